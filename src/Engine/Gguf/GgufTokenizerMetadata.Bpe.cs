using Engine.Tokenization;

namespace Engine.Gguf;

public static partial class GgufTokenizerMetadata
{
    static string BpePreTokenizerName(TextTokenizer tokenizer, string source) =>
        throw new EngineException($"{source}: byte-level BPE export is not available yet");
}
