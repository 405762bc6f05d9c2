using System.Text;
using Microsoft.ML.Tokenizers;

namespace Engine.Tokenization;

/// <summary>
/// A byte-level BPE tokenizer (GPT-2, Llama-3, Qwen) from a Hugging Face tokenizer.json or a GGUF "gpt2"
/// vocabulary. Text is cut at added/special tokens, normalized, split by the pre-tokenizer regex, and each
/// piece is encoded by Microsoft.ML.Tokenizers' BPE (byte-level: UTF-8 bytes through GPT-2's byte alphabet,
/// merges applied by rank). Decoding maps the alphabet back to bytes.
/// </summary>
public sealed class ByteBpeTokenizer : TextTokenizer
{
    const int MaxUnusedIds = 1024;

    readonly string[] _tokens;
    readonly TokenType[] _types;
    readonly string[] _merges;
    readonly Dictionary<string, int> _vocab;
    readonly Dictionary<string, int> _idByToken;
    readonly BpeTokenizer _bpe;
    readonly BpePreTokenizer _preTokenizer;
    readonly NormalizationForm[] _normalizers;
    readonly SpecialTokenMatcher _specials;
    readonly byte[]? _jsonBytes;
    readonly TokenizerConfig? _config;

    public override TokenizerKind Kind => TokenizerKind.ByteLevelBpe;
    public override int VocabSize => _tokens.Length;
    public override IReadOnlyList<string> Tokens => _tokens;
    /// <summary>Byte-level BPE has no scores (llama.cpp writes none for it): empty.</summary>
    public override IReadOnlyList<float> Scores => Array.Empty<float>();
    public override IReadOnlyList<TokenType> TokenTypes => _types;
    public override IReadOnlyList<string> Merges => _merges;
    /// <summary>The main pre-tokenizer regex (for GGUF's tokenizer.ggml.pre), if any.</summary>
    public string? PreTokenizerPattern => _preTokenizer.MainPattern;
    public bool IgnoreMerges { get; }

    ByteBpeTokenizer(HfTokenizerJson json, TokenizerConfig? config, TokenizerSettings settings, string source)
    {
        _config = config;
        _jsonBytes = json.FileBytes;
        _preTokenizer = json.PreTokenizer;
        _normalizers = json.Normalizers;
        IgnoreMerges = json.IgnoreMerges;
        _merges = json.Merges.ToArray();
        _vocab = json.Vocab;

        int entries = json.Vocab.Count + json.Added.Count;
        long maxId = Math.Max(json.Vocab.Count == 0 ? -1 : json.Vocab.Values.Max(), json.Added.Count == 0 ? -1 : json.Added.Max(a => a.Id));
        // Ids must be (nearly) dense; a stray huge id would otherwise make us allocate a huge table.
        if (maxId >= entries + MaxUnusedIds)
            throw new EngineException($"{source}: token id {maxId} is out of range ({entries} tokens; ids must be dense)");
        int size = (int)maxId + 1;
        var tokens = new string?[size];
        var types = new TokenType[size];
        foreach (var (token, id) in json.Vocab) { tokens[id] = token; types[id] = TokenType.Normal; }
        foreach (var added in json.Added)
        {
            if (tokens[added.Id] is { } existing && existing != added.Content)
                throw new EngineException($"{source}: added token {added.Id} \"{added.Content}\" clashes with \"{existing}\" at the same id");
            tokens[added.Id] = added.Content;
            types[added.Id] = added.Special ? TokenType.Control : TokenType.UserDefined;
        }
        for (int id = 0; id < size; id++)
            if (tokens[id] is null) { tokens[id] = json.Unused.GetValueOrDefault(id, $"[PAD{id}]"); types[id] = TokenType.Unused; } // as llama.cpp's converter fills gaps
        var tokenList = tokens.Select(t => t!).ToList();
        var typeList = types.ToList();
        if (config is not null) TokenizerConfig.ApplyAddedTokens(tokenList, typeList, null, config.AddedTokens, config.Source);
        _tokens = tokenList.ToArray();
        _types = typeList.ToArray();
        _idByToken = new Dictionary<string, int>(_tokens.Length, StringComparer.Ordinal);
        for (int id = 0; id < _tokens.Length; id++) _idByToken.TryAdd(_tokens[id], id);

        try
        {
            _bpe = BpeTokenizer.Create(new BpeOptions(json.Vocab) { Merges = _merges, ByteLevel = true });
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            throw new EngineException($"{source}: the BPE vocabulary or merges were rejected: {e.Message}", e);
        }

        BosId = config?.BosToken is { } bos ? Lookup(bos, "bos_token", config.Source) : settings.BosId ?? OptionalLookup(json.TemplateBos, source);
        EosId = config?.EosToken is { } eos ? Lookup(eos, "eos_token", config.Source) : settings.EosId ?? OptionalLookup(json.TemplateEos, source);
        UnkId = config?.UnkToken is { } unk ? Lookup(unk, "unk_token", config.Source) : settings.UnkId;
        PadId = config?.PadToken is { } pad ? Lookup(pad, "pad_token", config.Source) : settings.PadId;
        foreach (var (name, id) in new[] { ("bos", BosId), ("eos", EosId), ("unk", UnkId), ("pad", PadId) })
            if (id is int i && (i < 0 || i >= _tokens.Length))
                throw new EngineException($"{source}: {name} id {i} is out of range (vocabulary of {_tokens.Length})");
        // Without add_bos_token in the config, BOS is added when the post-processor template adds it (Llama-3).
        AddBos = config?.AddBosToken ?? settings.AddBos ?? (json.TemplateBos is not null && BosId is not null);
        AddEos = config?.AddEosToken ?? settings.AddEos ?? (json.TemplateEos is not null && EosId is not null);
        ChatTemplate = config?.ChatTemplate ?? settings.ChatTemplate;
        SpecialTokenStrings = SpmTokenizer.SpecialStrings(_tokens, BosId, EosId, UnkId, PadId);
        _specials = new SpecialTokenMatcher(Enumerable.Range(0, _tokens.Length)
            .Where(id => _types[id] is TokenType.Control or TokenType.UserDefined)
            .Select(id => (_tokens[id], id, _types[id] == TokenType.UserDefined)));
    }

    /// <summary>Loads a byte-level BPE tokenizer.json, with the folder's tokenizer_config.json settings if given.</summary>
    public static ByteBpeTokenizer Load(string tokenizerJsonPath, TokenizerConfig? config = null) =>
        FromJson(HfTokenizerJson.Load(tokenizerJsonPath), config);

    internal static ByteBpeTokenizer FromJson(HfTokenizerJson json, TokenizerConfig? config)
    {
        if (!json.IsByteLevelBpe) throw new EngineException($"{json.Source}: {json.WhyNotByteLevelBpe}");
        return new ByteBpeTokenizer(json, config, new TokenizerSettings(), json.Source);
    }

    /// <summary>
    /// Builds the tokenizer from a GGUF "gpt2" vocabulary: tokens (byte-level spelling) with their types, merges
    /// ("a b", by rank) and llama.cpp's pre-tokenizer name ("llama-bpe", "qwen2", "gpt-2"/"default").
    /// Control tokens become special added tokens, user-defined ones non-special added tokens.
    /// </summary>
    public static ByteBpeTokenizer FromVocabulary(IReadOnlyList<string> tokens, IReadOnlyList<TokenType> types, IReadOnlyList<string> merges,
        string? preTokenizerName, TokenizerSettings settings, string source = "vocabulary")
    {
        if (tokens.Count == 0) throw new EngineException($"{source}: the vocabulary is empty");
        if (types.Count != tokens.Count) throw new EngineException($"{source}: {tokens.Count} tokens but {types.Count} token types");
        var (pattern, ignoreMerges) = PreTokenizerPatterns.ForLlamaCppName(preTokenizerName)
            ?? throw new EngineException($"{source}: pre-tokenizer \"{preTokenizerName}\" is not supported (supported: llama-bpe, qwen2, gpt-2, default)");
        var vocab = new Dictionary<string, int>(tokens.Count, StringComparer.Ordinal);
        var added = new List<AddedTokenInfo>();
        var unused = new Dictionary<int, string>();
        for (int id = 0; id < tokens.Count; id++)
        {
            if (string.IsNullOrEmpty(tokens[id])) throw new EngineException($"{source}: token {id} is empty");
            if (!Enum.IsDefined(types[id])) throw new EngineException($"{source}: token {id} has unknown token type {(int)types[id]}");
            if (types[id] is TokenType.Control or TokenType.UserDefined) added.Add(new AddedTokenInfo(id, tokens[id], types[id] == TokenType.Control));
            else if (types[id] == TokenType.Unused) unused[id] = tokens[id];
            else if (!vocab.TryAdd(tokens[id], id)) throw new EngineException($"{source}: token \"{tokens[id]}\" appears twice (ids {vocab[tokens[id]]} and {id})");
        }
        var json = new HfTokenizerJson
        {
            Source = source,
            Vocab = vocab,
            Merges = ValidateMerges(merges, vocab, source),
            Added = added,
            PreTokenizer = BpePreTokenizer.FromPattern(pattern, source),
            IgnoreMerges = ignoreMerges,
            Unused = unused,
        };
        return new ByteBpeTokenizer(json, null, settings, source);
    }

    static List<string> ValidateMerges(IReadOnlyList<string> merges, Dictionary<string, int> vocab, string source)
    {
        var result = new List<string>(merges.Count);
        for (int i = 0; i < merges.Count; i++)
        {
            var parts = merges[i].Split(' ');
            if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
                throw new EngineException($"{source}: merge {i} \"{merges[i]}\" is not two tokens separated by one space");
            foreach (var t in new[] { parts[0], parts[1], parts[0] + parts[1] })
                if (!vocab.ContainsKey(t)) throw new EngineException($"{source}: merge {i} (\"{merges[i]}\") uses \"{t}\", which is not in the vocabulary");
            result.Add(merges[i]);
        }
        return result;
    }

    int Lookup(string content, string key, string source) =>
        _idByToken.TryGetValue(content, out int id) ? id
            : throw new EngineException($"{source}: {key} \"{content}\" is not in the vocabulary");

    int? OptionalLookup(string? content, string source) => content is null ? null : Lookup(content, "post_processor special token", source);

    public override IReadOnlyList<int> EncodeText(string text, bool parseSpecial = true)
    {
        var output = new List<int>();
        foreach (var segment in _specials.Split(text, parseSpecial))
        {
            if (segment.IsToken)
            {
                output.Add(segment.TokenId);
                continue;
            }
            string plain = text.Substring(segment.Start, segment.Length);
            foreach (var form in _normalizers) plain = plain.Normalize(form);
            foreach (var piece in _preTokenizer.Split(plain)) EncodePiece(piece, output);
        }
        return output;
    }

    void EncodePiece(string piece, List<int> output)
    {
        if (piece.Length == 0) return;
        // ignore_merges (Llama-3): a word that is itself a token is taken whole, whatever the merges would do.
        if (IgnoreMerges && _vocab.TryGetValue(ByteLevelAlphabet.Encode(piece), out int whole))
        {
            output.Add(whole);
            return;
        }
        output.AddRange(_bpe.EncodeToIds(piece, considerPreTokenization: false, considerNormalization: false));
    }

    public override string Decode(IEnumerable<int> ids, bool skipSpecial = true)
    {
        var bytes = new List<byte>();
        foreach (int id in ids)
        {
            if (id < 0 || id >= _tokens.Length) throw new EngineException($"token id {id} is out of range (vocabulary of {_tokens.Length})");
            switch (_types[id])
            {
                case TokenType.Control:
                    if (!skipSpecial) bytes.AddRange(Encoding.UTF8.GetBytes(_tokens[id]));
                    break;
                case TokenType.UserDefined:
                    bytes.AddRange(Encoding.UTF8.GetBytes(_tokens[id])); // added tokens are stored as plain text
                    break;
                case TokenType.Unused:
                    break;
                default:
                    ByteLevelAlphabet.AppendBytes(_tokens[id], bytes);
                    break;
            }
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    /// <summary>Writes tokenizer.json (the original bytes when loaded from one) and tokenizer_config.json.</summary>
    public override void SaveTo(string directory)
    {
        Directory.CreateDirectory(directory);
        byte[] bytes = _jsonBytes ?? Encoding.UTF8.GetBytes(HfTokenizerJson.Serialize(_tokens, _types, _merges, _preTokenizer, _normalizers,
            IgnoreMerges, BosId, EosId, AddBos, AddEos) + "\n");
        Util.AtomicDirectory.WriteFile(Path.Combine(directory, HfTokenizerJson.FileName), tmp => File.WriteAllBytes(tmp, bytes));
        TokenizerConfig.Write(Path.Combine(directory, TokenizerConfig.FileName), this, _config?.Raw, "PreTrainedTokenizerFast");
    }
}
