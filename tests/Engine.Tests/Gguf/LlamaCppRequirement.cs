using Engine.Gguf.LlamaCpp;

namespace Engine.Tests.Gguf;

/// <summary>Skips a test when llama.cpp's libraries (from LLamaSharp.Backend.Cpu, restored with the build) are absent.</summary>
public static class LlamaCppRequirement
{
    public static void Require() =>
        Skip.IfNot(LlamaCppRuntime.IsAvailable, "llama.cpp libraries are absent next to Engine.dll (runtimes/linux-x64/native/*; restore LLamaSharp.Backend.Cpu with ./build.sh)");
}
