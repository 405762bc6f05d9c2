using System.Globalization;
using System.Text.RegularExpressions;
using Engine.Cli;
using Engine.Cli.Options;
using Engine.Tests.Infrastructure;

namespace Engine.Tests.Cli;

/// <summary>
/// Help, parsing and --config come from one declaration per option: every option `--help` shows is accepted, every
/// accepted option is shown, and a config file takes exactly the flags' keys.
/// </summary>
public class CliOptionsTests
{
    public static IEnumerable<object[]> Commands => CliMain.Commands.Select(c => new object[] { c.Name });

    static ICliCommand Command(string name) => CliMain.Commands.Single(c => c.Name == name);

    /// <summary>The option names listed in a command's help (first column of each option line).</summary>
    static HashSet<string> ShownOptions(string help) =>
        help.Split('\n').SkipWhile(l => !l.StartsWith("options:")).Skip(1)
            .Where(l => l.StartsWith("  --"))
            .SelectMany(l => Regex.Matches(l.Trim().Split("  ")[0], @"--([a-z0-9-]+)").Select(m => m.Groups[1].Value))
            .ToHashSet();

    /// <summary>The required options with sample values (and the positional), so that one more option can be added.</summary>
    static List<string> Minimal(ICliCommand c)
    {
        var args = new List<string>();
        if (c.Positional != null) args.Add("file.jsonl");
        foreach (var o in c.AcceptedOptions.Where(o => o.Required))
        {
            args.Add("--" + o.Name);
            if (o.Sample != null) args.Add(o.Sample);
        }
        return args;
    }

    [Theory]
    [MemberData(nameof(Commands))]
    public void Help_shows_exactly_the_accepted_options(string name)
    {
        var c = Command(name);
        var r = CliRunner.Run(name.Split(' ').Append("--help").ToArray());
        Assert.Equal(0, r.ExitCode);
        var shown = ShownOptions(r.Stdout);
        var accepted = c.AcceptedOptions.Select(o => o.Name).ToHashSet();
        Assert.True(shown.SetEquals(accepted),
            $"{name}: shown but not accepted: {string.Join(", ", shown.Except(accepted))}; accepted but not shown: {string.Join(", ", accepted.Except(shown))}");
    }

    [Theory]
    [MemberData(nameof(Commands))]
    public void Every_shown_option_parses_with_a_sample_value(string name)
    {
        var c = Command(name);
        using var dir = new TempDir();
        foreach (var option in ShownOptions(c.Help()))
        {
            var accepted = c.AcceptedOptions.Single(o => o.Name == option);
            string? sample = accepted.Sample;
            // Required options (and their aliases) are already in the minimal line.
            if (c.AcceptedOptions.Any(o => o.Required && o.Name == accepted.Primary)) continue;
            var args = Minimal(c);
            if (option == "config")
            {
                string empty = dir.File("empty.toml");
                File.WriteAllText(empty, "");
                args.AddRange(new[] { "--config", empty });
            }
            else
            {
                args.Add("--" + option);
                if (sample != null) args.Add(sample);
            }
            var e = Record.Exception(() => c.Check(args.ToArray()));
            Assert.True(e is null, $"{name} {string.Join(' ', args)}: {e?.Message}");
        }
    }

    [Theory]
    [MemberData(nameof(Commands))]
    public void Unknown_options_and_missing_values_are_usage_errors(string name)
    {
        var c = Command(name);
        var e = Assert.Throws<UsageException>(() => c.Check(Minimal(c).Append("--no-such-option").ToArray()));
        Assert.Contains("--no-such-option", e.Message);
        var valued = c.AcceptedOptions.FirstOrDefault(o => o.Sample != null && !o.Required && o.Name == o.Primary && o.Name != "config");
        if (valued != null)
            Assert.Throws<UsageException>(() => c.Check(Minimal(c).Append("--" + valued.Name).ToArray()));
    }

    [Fact]
    public void Required_options_are_enforced_and_named()
    {
        var r = CliRunner.Run("train", "--method", "dpo", "--data", "d.jsonl", "--out", "o");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--model is required", r.Stderr);
        Assert.Contains("usage: engine train", r.Stderr);
    }

    [Fact]
    public void Train_config_takes_exactly_the_flags_as_keys()
    {
        var c = Command("train");
        using var dir = new TempDir();
        // Every flag as a TOML key (underscores, as TRL configs spell them), each with its sample value.
        var lines = new List<string>();
        foreach (var (name, _, sample, _) in c.AcceptedOptions.Where(o => o.Name != "config"))
        {
            string key = name.Replace('-', '_');
            string value = sample is null ? "true"
                : double.TryParse(sample, NumberStyles.Float, CultureInfo.InvariantCulture, out _) ? sample : $"\"{sample}\"";
            lines.Add($"{key} = {value}");
        }
        string all = dir.File("all.toml");
        File.WriteAllLines(all, lines);
        c.Check(new[] { "--config", all });

        string extra = dir.File("extra.toml");
        File.WriteAllLines(extra, new[] { "method = \"dpo\"", "learning_rate_typo = 0.1" });
        var e = Assert.Throws<EngineException>(() => c.Check(new[] { "--config", extra, "--model", "m", "--data", "d", "--out", "o" }));
        Assert.Contains("learning_rate_typo", e.Message);
        Assert.Contains(extra, e.Message);

        // The command line wins over the file.
        string one = dir.File("one.toml");
        File.WriteAllLines(one, new[] { "batch_size = 3", "method = \"kto\"", "model = \"m\"", "data = \"d\"", "out = \"o\"" });
        var parsed = new Engine.Cli.Commands.TrainCommand().Parse(new[] { "--config", one, "--batch-size", "5" });
        Assert.Equal(5, parsed.Value.Run.Step.MicroBatch);
        Assert.Equal("kto", parsed.Value.Run.Step.Method.Name);
    }
}
