using System.Text;

namespace Engine.Tokenization;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> BPE tokenizer run the way the reference library runs it: added tokens are cut
/// out of the raw text first (with their lstrip/rstrip/single_word/normalized flags), each remaining stretch is
/// normalized, split by the pre-tokenizer and encoded word by word by the BPE model; the post-processor's BOS/EOS
/// are added by <see cref="TextTokenizer.Encode"/>; decoding maps ids to token strings and runs the decoder chain.
/// This covers byte-level BPE (GPT-2, Llama 3, Qwen) and SentencePiece-style BPE with byte fallback written as
/// tokenizer.json (Mistral and Llama 2 without tokenizer.model, Gemma 3). Also built from GGUF vocabularies.
/// </summary>
public sealed class HfTokenizer : TextTokenizer
{
    const int MaxUnusedIds = 1024;

    readonly string[] _tokens;
    readonly TokenType[] _types;
    readonly BpeModel _model;
    readonly HfNormalizer _normalizer;
    readonly HfPreTokenizer _preTokenizer;
    readonly HfDecoder _decoder;
    readonly List<AddedTokenSpec> _added;
    readonly Dictionary<int, AddedTokenSpec> _addedById;
    readonly AddedTokenMatcher _rawMatcher;
    readonly AddedTokenMatcher _normalizedMatcher;
    readonly byte[]? _jsonBytes;
    readonly TokenizerConfig? _config;

    public override TokenizerKind Kind { get; }
    public override int VocabSize => _tokens.Length;
    public override IReadOnlyList<string> Tokens => _tokens;
    /// <summary>BPE has no scores (llama.cpp writes none for byte-level BPE): empty.</summary>
    public override IReadOnlyList<float> Scores => Array.Empty<float>();
    public override IReadOnlyList<TokenType> TokenTypes => _types;
    public override IReadOnlyList<string> Merges => _model.Merges;
    /// <summary>The main pre-tokenizer regex (for GGUF's tokenizer.ggml.pre), if any.</summary>
    public string? PreTokenizerPattern => _preTokenizer.MainPattern;
    public bool IgnoreMerges => _model.IgnoreMerges;
    public bool ByteFallback => _model.ByteFallback;
    /// <summary>SentencePiece's dummy prefix: a "▁" is put before the text (Prepend normalizer or Metaspace prefix scheme).</summary>
    public bool AddsDummyPrefix => _normalizer.PrependsSpaceSymbol || _preTokenizer.Metaspace is { Scheme: not HfPreTokenizer.PrependScheme.Never };
    /// <summary>Spaces are written "▁" before BPE (Replace normalizer or Metaspace).</summary>
    public bool EscapesSpaces => _normalizer.EscapesSpaces || _preTokenizer.Metaspace is { Replacement: '\u2581' };
    /// <summary>The normalizer steps by name ("NFC", "Prepend, Replace"), or null when there is none.</summary>
    public string? NormalizerDescription => _normalizer.IsEmpty ? null : string.Join(", ", _normalizer.Steps.Select(s => s.ToJson()["type"]!.GetValue<string>()));
    /// <summary>For each token that some merge builds, the rank of the first such merge.</summary>
    public Dictionary<int, int> MergeRanksByToken() => _model.FirstMergeRanks();
    /// <summary>Added tokens with flags GGUF cannot carry (lstrip, rstrip, single_word, normalized).</summary>
    public int AddedTokensWithFlags => _added.Count(a => a.LStrip || a.RStrip || a.SingleWord || a.Normalized);

    HfTokenizer(HfTokenizerJson json, TokenizerConfig? config, TokenizerSettings settings, string source)
    {
        _config = config;
        _jsonBytes = json.FileBytes;
        _normalizer = json.Normalizer;
        _preTokenizer = json.PreTokenizer;
        _decoder = json.Decoder;
        _model = new BpeModel(json.Vocab, json.Merges, json.ByteFallback, json.FuseUnknown, json.IgnoreMerges, json.UnkToken, source);

        // Added tokens take the id the reference gives them on load: the model's id for a string the vocabulary has,
        // else the next id after the vocabulary; the ids written in the file only have to agree.
        var resolved = new Dictionary<int, AddedTokenSpec>();
        var idOfContent = new Dictionary<string, int>(StringComparer.Ordinal);
        int nextId = json.Vocab.Count;
        foreach (var a in json.Added)
        {
            int id = json.AddedIdsAreFixed ? a.Id
                : idOfContent.TryGetValue(a.Content, out int known) ? known
                : json.Vocab.TryGetValue(a.Content, out int inVocab) ? inVocab : nextId++;
            idOfContent[a.Content] = id;
            resolved[id] = a with { Id = id };
        }
        int entries = json.Vocab.Count + resolved.Count;
        long maxId = Math.Max(json.Vocab.Count == 0 ? -1 : json.Vocab.Values.Max(), resolved.Count == 0 ? -1 : resolved.Keys.Max());
        // Ids must be (nearly) dense; a stray huge id would otherwise make us allocate a huge table.
        if (maxId >= entries + MaxUnusedIds)
            throw new EngineException($"{source}: token id {maxId} is out of range ({entries} tokens; ids must be dense)");
        int size = (int)maxId + 1;
        var tokens = new string?[size];
        var types = new TokenType[size];
        foreach (var (token, id) in json.Vocab)
        {
            tokens[id] = token;
            types[id] = json.ByteFallback && HfDecoder.ByteFallback.ByteOf(token) is not null ? TokenType.Byte : TokenType.Normal;
        }
        var added = new List<AddedTokenSpec>();
        var addedIds = new HashSet<int>();
        foreach (var a in resolved.Values.OrderBy(a => a.Id))
        {
            if (tokens[a.Id] is { } existing && existing != a.Content)
                throw new EngineException($"{source}: added token \"{a.Content}\" falls on id {a.Id}, which the vocabulary gives to \"{existing}\" (its ids are not dense)");
            tokens[a.Id] = a.Content;
            types[a.Id] = a.Special ? TokenType.Control : TokenType.UserDefined;
            addedIds.Add(a.Id);
            added.Add(a);
        }
        for (int id = 0; id < size; id++)
            if (tokens[id] is null) { tokens[id] = json.Unused.GetValueOrDefault(id, $"[PAD{id}]"); types[id] = TokenType.Unused; } // as llama.cpp's converter fills gaps
        var tokenList = tokens.Select(t => t!).ToList();
        var typeList = types.ToList();
        if (config is not null)
        {
            TokenizerConfig.ApplyAddedTokens(tokenList, typeList, null, config.AddedTokens, config.Source);
            // Config tokens that tokenizer.json does not list become added tokens too (transformers adds them on load).
            foreach (var t in config.AddedTokens)
                if (addedIds.Add(t.Id))
                {
                    added.Add(new AddedTokenSpec(t.Id, t.Content, t.Special, t.SingleWord, t.LStrip, t.RStrip, t.Normalized ?? !t.Special));
                    typeList[t.Id] = t.Special ? TokenType.Control : TokenType.UserDefined;
                }
        }
        _tokens = tokenList.ToArray();
        _types = typeList.ToArray();
        _added = added;
        _addedById = added.ToDictionary(a => a.Id);
        // Tokens marked normalized are looked for in the normalized text, in their normalized form.
        _rawMatcher = new AddedTokenMatcher(added.Where(a => !a.Normalized));
        _normalizedMatcher = new AddedTokenMatcher(added.Where(a => a.Normalized).Select(a => a with { Content = _normalizer.Apply(a.Content) }));

        var idByToken = new Dictionary<string, int>(_tokens.Length, StringComparer.Ordinal);
        for (int id = 0; id < _tokens.Length; id++) idByToken.TryAdd(_tokens[id], id);
        int Lookup(string content, string key, string where) =>
            idByToken.TryGetValue(content, out int id) ? id : throw new EngineException($"{where}: {key} \"{content}\" is not in the vocabulary");
        int? OptionalLookup(string? content) => content is null ? null : Lookup(content, "post_processor special token", source);

        BosId = config?.BosToken is { } bos ? Lookup(bos, "bos_token", config.Source) : settings.BosId ?? OptionalLookup(json.TemplateBos);
        EosId = config?.EosToken is { } eos ? Lookup(eos, "eos_token", config.Source) : settings.EosId ?? OptionalLookup(json.TemplateEos);
        UnkId = config?.UnkToken is { } unk ? Lookup(unk, "unk_token", config.Source) : settings.UnkId ?? _model.UnkId;
        PadId = config?.PadToken is { } pad ? Lookup(pad, "pad_token", config.Source) : settings.PadId;
        foreach (var (name, id) in new[] { ("bos", BosId), ("eos", EosId), ("unk", UnkId), ("pad", PadId) })
            if (id is int i && (i < 0 || i >= _tokens.Length))
                throw new EngineException($"{source}: {name} id {i} is out of range (vocabulary of {_tokens.Length})");
        // Without add_bos_token in the config, BOS is added when the post-processor template adds it (Llama 3, Gemma).
        AddBos = config?.AddBosToken ?? settings.AddBos ?? (json.TemplateBos is not null && BosId is not null);
        AddEos = config?.AddEosToken ?? settings.AddEos ?? (json.TemplateEos is not null && EosId is not null);
        ChatTemplate = config?.ChatTemplate ?? settings.ChatTemplate;
        SpecialTokenStrings = SpmTokenizer.SpecialStrings(_tokens, BosId, EosId, UnkId, PadId);
        Kind = _preTokenizer.HasByteLevel || _decoder.IsByteLevel ? TokenizerKind.ByteLevelBpe : TokenizerKind.SentencePieceBpe;
    }

    /// <summary>Loads a tokenizer.json, with the folder's tokenizer_config.json settings if given.</summary>
    public static HfTokenizer Load(string tokenizerJsonPath, TokenizerConfig? config = null) =>
        FromJson(HfTokenizerJson.Load(tokenizerJsonPath), config);

    internal static HfTokenizer FromJson(HfTokenizerJson json, TokenizerConfig? config)
    {
        if (json.Unsupported is not null) throw new EngineException($"{json.Source}: {json.Unsupported}");
        return new HfTokenizer(json, config, new TokenizerSettings(), json.Source);
    }

    /// <summary>
    /// Builds the tokenizer from a GGUF "gpt2" vocabulary: tokens (byte-level spelling) with their types, merges
    /// ("a b", by rank) and llama.cpp's pre-tokenizer name ("llama-bpe", "qwen2", "gpt-2"/"default").
    /// Control tokens become special added tokens, user-defined ones non-special added tokens.
    /// </summary>
    public static HfTokenizer FromVocabulary(IReadOnlyList<string> tokens, IReadOnlyList<TokenType> types, IReadOnlyList<string> merges,
        string? preTokenizerName, TokenizerSettings settings, string source = "vocabulary")
    {
        var (pattern, ignoreMerges) = PreTokenizerPatterns.ForLlamaCppName(preTokenizerName)
            ?? throw new EngineException($"{source}: pre-tokenizer \"{preTokenizerName}\" is not supported (supported: llama-bpe, qwen2, gpt-2, default, gemma4)");
        var (vocab, added, unused) = SplitVocabulary(tokens, types, source, addedInVocab: false);
        var json = new HfTokenizerJson
        {
            Source = source,
            Vocab = vocab,
            Merges = ParseMerges(merges, source),
            IgnoreMerges = ignoreMerges,
            Added = added,
            AddedIdsAreFixed = true,
            // Qwen2-family tokenizer.json files compose to NFC first; GGUF has no key for it, so the name stands for it.
            Normalizer = preTokenizerName == "qwen2" ? new HfNormalizer(new[] { new HfNormalizer.UnicodeForm(NormalizationForm.FormC) }) : HfNormalizer.None,
            PreTokenizer = HfPreTokenizer.FromPattern(pattern, source),
            Decoder = new HfDecoder(new HfDecoder.Step[] { new HfDecoder.ByteLevel() }),
            Unused = unused,
        };
        return new HfTokenizer(json, null, settings, source);
    }

    /// <summary>
    /// Builds a SentencePiece-style BPE (byte fallback, spaces as "▁") from a GGUF vocabulary with merges: with the
    /// dummy prefix as Mistral's and Llama 2's tokenizer.json write it (GGUF "llama" with merges), without it as
    /// Gemma's (GGUF pre-tokenizer "gemma4").
    /// </summary>
    public static HfTokenizer FromSentencePieceVocabulary(IReadOnlyList<string> tokens, IReadOnlyList<TokenType> types, IReadOnlyList<string> merges,
        bool dummyPrefix, TokenizerSettings settings, string source = "vocabulary")
    {
        var (vocab, added, unused) = SplitVocabulary(tokens, types, source, addedInVocab: true);
        var normalizer = new List<HfNormalizer.Step>();
        if (dummyPrefix) normalizer.Add(new HfNormalizer.Prepend("\u2581"));
        normalizer.Add(new HfNormalizer.Replace(" ", false, null, "\u2581"));
        var decoder = new List<HfDecoder.Step>
        {
            new HfDecoder.Replace("\u2581", false, null, " "), new HfDecoder.ByteFallback(), new HfDecoder.Fuse(),
        };
        if (dummyPrefix) decoder.Add(new HfDecoder.Strip(" ", 1, 0));
        var json = new HfTokenizerJson
        {
            Source = source,
            Vocab = vocab,
            Merges = ParseMerges(merges, source),
            ByteFallback = true,
            FuseUnknown = true,
            UnkToken = settings.UnkId is int u && u >= 0 && u < tokens.Count ? tokens[u] : null,
            Added = added,
            AddedIdsAreFixed = true,
            Normalizer = new HfNormalizer(normalizer),
            Decoder = new HfDecoder(decoder),
            Unused = unused,
        };
        return new HfTokenizer(json, null, settings, source);
    }

    static (Dictionary<string, int>, List<AddedTokenSpec>, Dictionary<int, string>) SplitVocabulary(IReadOnlyList<string> tokens,
        IReadOnlyList<TokenType> types, string source, bool addedInVocab)
    {
        if (tokens.Count == 0) throw new EngineException($"{source}: the vocabulary is empty");
        if (types.Count != tokens.Count) throw new EngineException($"{source}: {tokens.Count} tokens but {types.Count} token types");
        var vocab = new Dictionary<string, int>(tokens.Count, StringComparer.Ordinal);
        var added = new List<AddedTokenSpec>();
        var unused = new Dictionary<int, string>();
        for (int id = 0; id < tokens.Count; id++)
        {
            if (string.IsNullOrEmpty(tokens[id])) throw new EngineException($"{source}: token {id} is empty");
            if (!Enum.IsDefined(types[id])) throw new EngineException($"{source}: token {id} has unknown token type {(int)types[id]}");
            bool isAdded = types[id] is TokenType.Control or TokenType.UserDefined or TokenType.Unknown;
            if (isAdded) added.Add(new AddedTokenSpec(id, tokens[id], types[id] != TokenType.UserDefined));
            if (types[id] == TokenType.Unused) unused[id] = tokens[id];
            else if (!isAdded || addedInVocab)
            {
                // SentencePiece-style vocabularies keep added tokens in the model vocabulary (their first id wins).
                if (!vocab.TryAdd(tokens[id], id) && !isAdded)
                    throw new EngineException($"{source}: token \"{tokens[id]}\" appears twice (ids {vocab[tokens[id]]} and {id})");
            }
        }
        return (vocab, added, unused);
    }

    static List<(string, string)> ParseMerges(IReadOnlyList<string> merges, string source)
    {
        var result = new List<(string, string)>(merges.Count);
        for (int i = 0; i < merges.Count; i++)
        {
            // The first space separates the parts, as llama.cpp reads them (a part may itself hold no space).
            int space = merges[i].IndexOf(' ', 1);
            if (space <= 0 || space == merges[i].Length - 1)
                throw new EngineException($"{source}: merge {i} \"{merges[i]}\" is not two tokens separated by a space");
            result.Add((merges[i][..space], merges[i][(space + 1)..]));
        }
        return result;
    }

    public override IReadOnlyList<int> EncodeText(string text, bool parseSpecial = true)
    {
        var output = new List<int>();
        text = ReplaceLoneSurrogates(text);
        foreach (var segment in _rawMatcher.Split(text, parseSpecial))
        {
            if (segment.IsToken)
            {
                output.Add(segment.TokenId);
                continue;
            }
            string normalized = _normalizer.Apply(text.Substring(segment.Start, segment.Length));
            if (_normalizedMatcher.IsEmpty)
            {
                EncodeWords(normalized, segment.Start == 0, output);
                continue;
            }
            foreach (var inner in _normalizedMatcher.Split(normalized, parseSpecial))
            {
                if (inner.IsToken) output.Add(inner.TokenId);
                else EncodeWords(normalized.Substring(inner.Start, inner.Length), segment.Start == 0 && inner.Start == 0, output);
            }
        }
        return output;
    }

    void EncodeWords(string normalized, bool atInputStart, List<int> output)
    {
        foreach (var word in _preTokenizer.Split(normalized, atInputStart)) _model.Encode(word, output);
    }

    /// <summary>Text reaches the reference as UTF-8, where an unpaired surrogate can only be U+FFFD.</summary>
    static string ReplaceLoneSurrogates(string text)
    {
        if (text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') < 0) return text;
        var sb = new StringBuilder(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            if (char.IsSurrogatePair(text, i)) { sb.Append(text, i, 2); i++; }
            else sb.Append(char.IsSurrogate(text[i]) ? '\uFFFD' : text[i]);
        }
        return sb.ToString();
    }

    public override string Decode(IEnumerable<int> ids, bool skipSpecial = true)
    {
        var pieces = new List<string>();
        foreach (int id in ids)
        {
            if (id < 0 || id >= _tokens.Length) throw new EngineException($"token id {id} is out of range (vocabulary of {_tokens.Length})");
            if (_addedById.TryGetValue(id, out var added))
            {
                // The token's own text, also for normalized ones (tokenizers 0.22 decodes the content, not its normalized form).
                if (!(skipSpecial && added.Special)) pieces.Add(added.Content);
            }
            else if (_types[id] != TokenType.Unused) pieces.Add(_tokens[id]);
        }
        return _decoder.Decode(pieces);
    }

    /// <summary>Writes tokenizer.json (the original bytes when loaded from one) and tokenizer_config.json.</summary>
    public override void SaveTo(string directory)
    {
        Directory.CreateDirectory(directory);
        byte[] bytes = _jsonBytes ?? Encoding.UTF8.GetBytes(HfTokenizerJson.Serialize(_tokens, _types, _added, _model, _normalizer, _preTokenizer,
            _decoder, BosId, EosId, AddBos, AddEos) + "\n");
        Util.AtomicDirectory.WriteFile(Path.Combine(directory, HfTokenizerJson.FileName), tmp => File.WriteAllBytes(tmp, bytes));
        TokenizerConfig.Write(Path.Combine(directory, TokenizerConfig.FileName), this, _config?.Raw,
            Kind == TokenizerKind.ByteLevelBpe ? "PreTrainedTokenizerFast" : "LlamaTokenizerFast");
    }
}
