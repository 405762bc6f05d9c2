using System.Text.Json;
using Engine.Cli.Commands;
using Engine.Data;
using Engine.Models;
using Engine.Tests.Infrastructure;
using Engine.Training;
using Engine.Util;

namespace Engine.Tests.Cli;

/// <summary>
/// One set of truncation limits: `train` (flags or --config), `eval` and `data inspect` take max_length,
/// max_prompt_length and the truncation mode from the same StepSettings, so what `data inspect` reports is what
/// training does. (They once differed: inspect cut prompts at 512 of 1024, train at half of its max length.)
/// </summary>
public class TruncationDefaultsTests
{
    static (int? MaxLength, int? MaxPromptLength, TruncationMode Mode) Of(TokenizationSettings s) => (s.MaxLength, s.MaxPromptLength, s.TruncationMode);

    static (int? MaxLength, int? MaxPromptLength, TruncationMode Mode) Inspect(string data, string model, params string[] lengths)
    {
        var r = CliRunner.Run(new[] { "data", "inspect", data, "--model", model, "--json" }.Concat(lengths).ToArray());
        Assert.True(r.ExitCode == 0, r.ToString());
        var t = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("truncation");
        return (t.GetProperty("max_length").GetInt32(), t.GetProperty("max_prompt_length").GetInt32(),
            Spelling.Parse<TruncationMode>(t.GetProperty("truncation_mode").GetString()!, "truncation_mode"));
    }

    static TrainingOptions Train(string data, string model, params string[] lengths) =>
        new TrainCommand().Parse(new[] { "--method", "dpo", "--model", model, "--data", data, "--out", "out" }.Concat(lengths).ToArray()).Value.Run;

    static TokenizationSettings Eval(string data, string model, params string[] lengths) =>
        new EvalCommand().Parse(new[] { "--method", "dpo", "--model", model, "--data", data }.Concat(lengths).ToArray()).Value.Eval.Step.Tokenization;

    [SkippableFact]
    public void Train_eval_config_and_data_inspect_use_the_same_limits()
    {
        string model = SharedData.Require(SharedData.Stories);
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("d.jsonl"), StoryPreferences.Pairs(6, seed: 2));
        string config = dir.File("c.toml");
        File.WriteAllText(config, "max_length = 64\nmax_prompt_length = 10\ntruncation_mode = \"keep_start\"\n");

        // The defaults, stated once (TokenizationSettings): 1024 / 512 / keep_end everywhere.
        Assert.Equal((1024, 512, TruncationMode.KeepEnd), Of(TokenizationSettings.Default));
        Assert.Equal(Of(TokenizationSettings.Default), Of(Train(data, model).Step.Tokenization));
        Assert.Equal(Of(TokenizationSettings.Default), Of(Eval(data, model)));
        Assert.Equal(Of(TokenizationSettings.Default), Inspect(data, model));

        // A max length alone: the prompt limit follows it the same way everywhere (half of a max length under 1024).
        foreach (var lengths in new[] { new[] { "--max-length", "64" }, new[] { "--max-length", "64", "--max-prompt-length", "10", "--truncation-mode", "keep_start" } })
        {
            var train = Of(Train(data, model, lengths).Step.Tokenization);
            Assert.Equal(train, Of(Eval(data, model, lengths)));
            Assert.Equal(train, Inspect(data, model, lengths));
        }
        Assert.Equal((64, 32, TruncationMode.KeepEnd), Inspect(data, model, "--max-length", "64"));
        // --config keys are the same options.
        Assert.Equal(Of(Train(data, model, "--max-length", "64", "--max-prompt-length", "10", "--truncation-mode", "keep_start").Step.Tokenization),
            Of(Train(data, model, "--config", config).Step.Tokenization));
    }

    [SkippableFact]
    public void What_data_inspect_counts_is_what_training_cuts()
    {
        string model = SharedData.Require(SharedData.Stories);
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("d.jsonl"), StoryPreferences.Pairs(6, seed: 2));
        // Story prompts are ~10–14 tokens: a max length of 16 cuts every row.
        var r = CliRunner.Run("data", "inspect", data, "--model", model, "--max-length", "16", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        var inspected = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("truncation");

        var options = Train(data, model, "--max-length", "16");
        using var loaded = ModelLoader.Load(model, requireTokenizer: true);
        var prepared = RunData.Prepare(options, loaded.RequireTokenizer());
        var trained = prepared.Train.Truncation;
        Assert.True(trained.PromptsTruncated > 0);
        Assert.Equal(inspected.GetProperty("prompts_truncated").GetInt32(), trained.PromptsTruncated);
        Assert.Equal(inspected.GetProperty("completions_truncated").GetInt32(), trained.CompletionsTruncated);
        Assert.Equal(inspected.GetProperty("rows_dropped").GetInt32(), trained.RowsDropped);
    }
}
