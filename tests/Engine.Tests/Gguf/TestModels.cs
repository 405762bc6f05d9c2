using Engine.Models;
using Engine.Tests.Infrastructure;

namespace Engine.Tests.Gguf;

/// <summary>Model folders made for GGUF tests in temporary directories (never inside the repository).</summary>
public static class TestModels
{
    /// <summary>A copy of stories260K's HF folder, so tests can alter it.</summary>
    public static string CopyStories(string directory)
    {
        string source = SharedData.Require(SharedData.Stories);
        Directory.CreateDirectory(directory);
        foreach (var f in Directory.GetFiles(source)) File.Copy(f, Path.Combine(directory, Path.GetFileName(f)));
        return directory;
    }

    /// <summary>
    /// stories260K with every weight perturbed by seeded noise and saved with <see cref="ModelLoader.Save"/>: a stand-in
    /// for a model Engine has trained (its weights are Engine's, not the reference's).
    /// </summary>
    public static string PerturbedStories(string directory, double relativeNoise = 0.05, long seed = 7)
    {
        using var loaded = ModelLoader.Load(SharedData.Require(SharedData.Stories));
        var gen = new TorchSharp.torch.Generator((ulong)seed);
        using (TorchSharp.torch.no_grad())
            foreach (var (name, p) in loaded.Model.named_parameters())
            {
                using var noise = TorchSharp.torch.randn(p.shape, generator: gen) * (p.std().item<float>() * relativeNoise);
                p.add_(noise);
            }
        ModelLoader.Save(loaded.Model, loaded.Tokenizer, directory, TorchSharp.torch.ScalarType.Float32);
        return directory;
    }
}
