using Engine.Gguf;
using Engine.Models;
using Engine.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Engine.Tests.Gguf;

/// <summary>
/// The faithfulness check on purpose-damaged files: a correct export passes and each kind of damage fails, at every
/// export type, on stories260K (real weights; its rows of 64 and 172 make the K-quant types fall back to Q5_0, Q8_0
/// and F16) and, for the K-quant types, on a random model whose rows fit 256-element blocks (so Q4_K and Q6_K are real).
/// </summary>
public class GgufFaithfulnessTests
{
    readonly ITestOutputHelper _output;
    public GgufFaithfulnessTests(ITestOutputHelper output) => _output = output;

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var type in new[] { "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m", "q6_k" }) data.Add("stories260K", type);
        foreach (var type in new[] { "q4_k_m", "q6_k" }) data.Add("kquant", type);
        return data;
    }

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public void ACorrectFilePassesAndEveryCorruptionFails(string modelName, string typeName)
    {
        LlamaCppRequirement.Require();
        using var tmp = new TempDir();
        string modelDir = modelName == "kquant" ? KQuantExportTests.Model(tmp.File("k")) : SharedData.Require(SharedData.Stories);
        var type = GgufExportTypes.Parse(typeName);
        string exported = GgufExporter.Export(modelDir, tmp.File("good.gguf"), new GgufExportOptions { Type = type }).OutputPath;
        using var source = ModelLoader.Load(modelDir, requireTokenizer: true);

        // Engine's side is computed once; llama.cpp then reads the good file and each damaged copy.
        var reference = GgufValidator.PrepareFaithfulness(source.Model, source.Tokenizer!, exported, type);
        var good = reference.Check(exported);
        _output.WriteLine($"{modelName} {typeName} correct: {good.MaxRelativeError:E2} (tolerance {good.Tolerance.MaxRelativeError:G2})");
        Assert.True(good.Passed, string.Join("; ", good.Failures));
        foreach (var kind in Enum.GetValues<GgufCorruption.Kind>())
        {
            string damaged = tmp.File($"{kind}.gguf");
            File.Copy(exported, damaged);
            string what = GgufCorruption.Apply(damaged, kind, source.Config.NumHeads);
            var report = reference.Check(damaged);
            _output.WriteLine($"{modelName} {typeName} {kind}: {report.MaxRelativeError:E2} ({what})");
            Assert.False(report.Passed, $"{what}: max |Δlogit|/σ {report.MaxRelativeError:E2} is within {report.Tolerance.MaxRelativeError:G2}");
        }
    }
}
