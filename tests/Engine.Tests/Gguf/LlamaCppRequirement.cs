using Engine.Gguf.LlamaCpp;

namespace Engine.Tests.Gguf;

/// <summary>Skips a test when llama.cpp's libraries are not installed (./build.sh installs them; CI always has them).</summary>
public static class LlamaCppRequirement
{
    public static void Require() =>
        Skip.IfNot(LlamaCppLibrary.IsAvailable, "llama.cpp libraries are absent (.tools/llama.cpp/lib; run ./build.sh)");
}
