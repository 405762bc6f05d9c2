using System.Globalization;
using System.Text.Json;
using Engine.Training;

namespace Engine.Cli.Commands;

public sealed class EvalCommand : ICliCommand
{
    public string Name => "eval";
    public string Summary => "Score a model against a reference on preference data (the seed paper's Table 1 columns).";
    public string Usage => "eval --model DIR --ref DIR --data FILE --method dpo|kto [--beta B] [--batch-size N] [--max-length N] [--loss-type T] [--json]";

    public int Run(CliArgs args)
    {
        var options = new TrainingOptions
        {
            Method = args.Choice("method", "", "dpo", "kto") is { Length: > 0 } m ? m : throw new UsageException("eval: --method is required"),
            ModelPath = args.RequiredString("model"),
            ReferenceModelPath = args.RequiredString("ref"),
            DataPath = args.RequiredString("data"),
            OutputDir = "",
            Beta = args.Double("beta"),
            LossType = args.String("loss-type"),
            BatchSize = args.Int("batch-size", min: 1) ?? 8,
            MaxLength = args.Int("max-length", min: 2) ?? 512,
            DesirableWeight = args.Double("desirable-weight") ?? 1.0,
            UndesirableWeight = args.Double("undesirable-weight") ?? 1.0,
            LogProb = Kernels.LogProbMode.Fused,
        };
        bool json = args.Flag("json");
        args.EnsureAllUsed();
        var metrics = ModelEvaluation.Run(options);
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(metrics.ToDictionary(kv => kv.Key, kv => double.IsFinite(kv.Value) ? (object)kv.Value : kv.Value.ToString(CultureInfo.InvariantCulture))));
            return 0;
        }
        // The seed paper's Table 1 columns; a metric the method does not define prints as "-".
        string V(string name) => metrics.TryGetValue(name, out var v) ? (double.IsFinite(v) ? v.ToString("0.0000", CultureInfo.InvariantCulture) : $"{v} (non-finite!)") : "-";
        var columns = new (string Header, string Metric)[]
        {
            ("logits ✓", "logits/chosen"), ("logits ✗", "logits/rejected"), ("logps ✓", "logps/chosen"), ("logps ✗", "logps/rejected"),
            ("loss", "loss"), ("rewards ✓", "rewards/chosen"), ("rewards ✗", "rewards/rejected"), ("margin", "rewards/margins"),
            ("accuracy", "rewards/accuracies"),
        };
        Console.WriteLine(string.Join(" | ", columns.Select(c => c.Header.PadLeft(11))));
        Console.WriteLine(string.Join(" | ", columns.Select(c => V(c.Metric).PadLeft(11))));
        if (metrics.ContainsKey("kl")) Console.WriteLine($"kl (z0): {V("kl")}");
        return 0;
    }
}
