using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Engine.Tests.Infrastructure;
using Engine.Tokenization;

namespace Engine.Tests.Tokenization;

/// <summary>
/// Hugging Face's Rust tokenizers (0.22, through the Tokenizers.DotNet package) as the independent oracle. Its
/// Encode always adds the post-processor's special tokens and its Decode always skips special tokens, so the other
/// two modes come from copies of the tokenizer.json that differ only where those flags act: one without the
/// post_processor (ids without BOS), one whose added tokens are all non-special (decode keeping every token).
/// </summary>
public sealed class HfOracle : IDisposable
{
    readonly Tokenizers.DotNet.Tokenizer _full, _noPostProcessor, _noSpecial;
    readonly TempDir _dir = new();
    static readonly object Gate = new();

    HfOracle(string tokenizerJson)
    {
        _full = new Tokenizers.DotNet.Tokenizer(tokenizerJson);
        var root = JsonNode.Parse(File.ReadAllText(tokenizerJson))!.AsObject();
        root["post_processor"] = null;
        string noPost = _dir.File("no-post.json");
        File.WriteAllText(noPost, root.ToJsonString());
        _noPostProcessor = new Tokenizers.DotNet.Tokenizer(noPost);
        root = JsonNode.Parse(File.ReadAllText(tokenizerJson))!.AsObject();
        foreach (var t in root["added_tokens"]?.AsArray() ?? new JsonArray()) t!["special"] = false;
        string noSpecial = _dir.File("no-special.json");
        File.WriteAllText(noSpecial, root.ToJsonString());
        _noSpecial = new Tokenizers.DotNet.Tokenizer(noSpecial);
    }

    static readonly ConcurrentDictionary<string, Lazy<HfOracle>> Cache = new();

    /// <summary>The oracle for a tokenizer.json, loaded once per test run.</summary>
    public static HfOracle For(string tokenizerJson) =>
        Cache.GetOrAdd(Path.GetFullPath(tokenizerJson), p => new Lazy<HfOracle>(() => new HfOracle(p))).Value;

    /// <summary>A throwaway oracle for a synthetic tokenizer.json (not cached).</summary>
    public static HfOracle Load(string tokenizerJson) => new(tokenizerJson);

    // The native library is not documented as thread-safe; tests of different classes may run in parallel.
    public int[] Encode(string text, bool addSpecial = true)
    {
        lock (Gate) return (addSpecial ? _full : _noPostProcessor).Encode(text).Select(i => (int)i).ToArray();
    }

    public string Decode(IEnumerable<int> ids, bool skipSpecial = true)
    {
        var array = ids.Select(i => (uint)i).ToArray();
        lock (Gate) return (skipSpecial ? _full : _noSpecial).Decode(array);
    }

    public void Dispose()
    {
        _full.Dispose();
        _noPostProcessor.Dispose();
        _noSpecial.Dispose();
        _dir.Dispose();
    }
}

/// <summary>The four real tokenizers of ../shared/tokenizers, each loaded by Engine once per test run.</summary>
public static class RealTokenizers
{
    public static readonly string[] Names = { "qwen3", "llama3", "mistral-v0.1", "gemma3" };

    public static string Folder(string name) => SharedData.Require("tokenizers/" + name);

    static readonly ConcurrentDictionary<string, Lazy<TextTokenizer>> Loaded = new();

    public static TextTokenizer Engine(string name)
    {
        string dir = Folder(name);
        return Loaded.GetOrAdd(dir, d => new Lazy<TextTokenizer>(() => TokenizerLoader.Load(d))).Value;
    }

    public static HfOracle Oracle(string name) => HfOracle.For(Path.Combine(Folder(name), "tokenizer.json"));

    public static TheoryData<string> All()
    {
        var data = new TheoryData<string>();
        foreach (var n in Names) data.Add(n);
        return data;
    }
}
