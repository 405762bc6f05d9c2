using Engine.Tests.Infrastructure;

namespace Engine.Tests.Tokenization;

/// <summary>
/// llama.cpp's tokenizer test cases for the LLaMA SentencePiece vocabulary (../shared/tokenizers/llama-spm):
/// the .inp file holds the inputs separated by lines "__ggml_vocab_test__" (each input framed by the newline
/// before and after the separator, which are not part of it); the .out file has one line of ids per input.
/// </summary>
public static class LlamaVocabCases
{
    public const int Count = 46;
    public const string Folder = "tokenizers/llama-spm";

    public static string ModelPath => SharedData.Require(Folder + "/tokenizer.model");

    public static IReadOnlyList<(string Text, int[] Ids)> Load()
    {
        string inp = File.ReadAllText(SharedData.Require(Folder + "/ggml-vocab-llama-spm.gguf.inp"));
        string[] outLines = File.ReadAllText(SharedData.Require(Folder + "/ggml-vocab-llama-spm.gguf.out")).Split('\n');
        var texts = inp.Split("__ggml_vocab_test__").ToList();
        texts.RemoveAt(texts.Count - 1); // what follows the last separator is just its newline
        var cases = new List<(string, int[])>();
        for (int i = 0; i < texts.Count; i++)
        {
            string t = texts[i];
            if (t.StartsWith('\n')) t = t[1..];
            if (t.EndsWith('\n')) t = t[..^1];
            int[] ids = outLines[i].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
            cases.Add((t, ids));
        }
        return cases;
    }

    public static IEnumerable<object[]> Indices => Enumerable.Range(0, Count).Select(i => new object[] { i });
}
