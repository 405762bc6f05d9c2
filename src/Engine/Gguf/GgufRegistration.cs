using System.Runtime.CompilerServices;
using Engine.Models;

namespace Engine.Gguf;

/// <summary>Wires GGUF files into <see cref="ModelLoader"/> when the library loads: Models stays ignorant of GGUF.</summary>
internal static class GgufRegistration
{
    [ModuleInitializer]
    internal static void Register() => ModelLoader.RegisterFileFormat(".gguf", GgufModelImporter.Open);
}
