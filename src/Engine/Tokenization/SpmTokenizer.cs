using System.Text;

namespace Engine.Tokenization;

/// <summary>
/// A SentencePiece BPE tokenizer (LLaMA, Mistral, TinyStories) from <c>tokenizer.model</c> or from a GGUF
/// vocabulary. Encoding follows llama.cpp exactly (see <see cref="SpmBpeEncoder"/>): a "▁" dummy prefix at the
/// start of the text and after every special token, spaces as "▁", special tokens in the text kept whole.
/// Decoding concatenates pieces; the dummy-prefix space right after a special token (BOS) is dropped, so
/// <c>Decode(Encode(text)) == text</c>, while a continuation decoded on its own keeps its leading space.
/// </summary>
public sealed class SpmTokenizer : TextTokenizer
{
    public const string ModelFileName = "tokenizer.model";
    const char SpaceSymbol = '\u2581'; // ▁

    readonly string[] _pieces;
    readonly float[] _scores;
    readonly TokenType[] _types;
    readonly Dictionary<string, int> _idByPiece;
    readonly int[] _byteIds;
    readonly int[] _byteOfId;
    readonly SpmBpeEncoder _encoder;
    readonly AddedTokenMatcher _specials;
    readonly SentencePieceModelFile _model;
    readonly byte[]? _modelBytes;
    readonly TokenizerConfig? _config;

    public override TokenizerKind Kind => TokenizerKind.SentencePiece;
    public override int VocabSize => _pieces.Length;
    public override IReadOnlyList<string> Tokens => _pieces;
    public override IReadOnlyList<float> Scores => _scores;
    public override IReadOnlyList<TokenType> TokenTypes => _types;
    public SpmNormalization Normalization { get; }

    SpmTokenizer(SentencePieceModelFile model, byte[]? modelBytes, IReadOnlyList<AddedTokenInfo> added, TokenizerConfig? config,
        TokenizerSettings settings, string source)
    {
        if (model.ModelType != SentencePieceModelType.Bpe)
            throw new EngineException($"{source}: SentencePiece model type {model.ModelType} is not supported (only BPE, as used by LLaMA-family models)");
        if (model.TreatWhitespaceAsSuffix)
            throw new EngineException($"{source}: SentencePiece models with treat_whitespace_as_suffix are not supported");
        _model = model;
        _modelBytes = modelBytes;
        _config = config;

        var pieces = model.Pieces.ToList();
        var scores = model.Scores.ToList();
        var types = model.Types.ToList();
        TokenizerConfig.ApplyAddedTokens(pieces, types, scores, added, config?.Source ?? source);
        _pieces = pieces.ToArray();
        _scores = scores.ToArray();
        _types = types.ToArray();

        _idByPiece = new Dictionary<string, int>(_pieces.Length, StringComparer.Ordinal);
        var mergeable = new Dictionary<string, int>(_pieces.Length, StringComparer.Ordinal);
        _byteIds = Enumerable.Repeat(-1, 256).ToArray();
        _byteOfId = new int[_pieces.Length];
        for (int id = 0; id < _pieces.Length; id++)
        {
            _idByPiece.TryAdd(_pieces[id], id); // a duplicated piece keeps its first id, as lookups do in SentencePiece
            _byteOfId[id] = -1;
            switch (_types[id])
            {
                case TokenType.Byte:
                    int b = ParseBytePiece(_pieces[id]) ?? throw new EngineException($"{source}: piece {id} has type BYTE but is \"{_pieces[id]}\", not <0xXX>");
                    if (_byteIds[b] < 0) _byteIds[b] = id;
                    _byteOfId[id] = b;
                    break;
                // SentencePiece never produces control, unknown or byte pieces from text; llama.cpp could, but
                // only for literal text such as "<0x41>", where we side with SentencePiece and Hugging Face.
                case TokenType.Normal or TokenType.UserDefined or TokenType.Unused:
                    mergeable.TryAdd(_pieces[id], id);
                    break;
            }
        }

        UnkId = config?.UnkToken is { } unk ? Lookup(unk, "unk_token", config.Source) : settings.UnkId ?? ModelId(model.UnkId, "unk", source);
        BosId = config?.BosToken is { } bos ? Lookup(bos, "bos_token", config.Source) : settings.BosId ?? ModelId(model.BosId, "bos", source);
        EosId = config?.EosToken is { } eos ? Lookup(eos, "eos_token", config.Source) : settings.EosId ?? ModelId(model.EosId, "eos", source);
        PadId = config?.PadToken is { } pad ? Lookup(pad, "pad_token", config.Source) : settings.PadId ?? ModelId(model.PadId, "pad", source);
        foreach (var (name, id) in new[] { ("bos", BosId), ("eos", EosId), ("unk", UnkId), ("pad", PadId) })
            if (id is int i && (i < 0 || i >= _pieces.Length))
                throw new EngineException($"{source}: {name} id {i} is out of range (vocabulary of {_pieces.Length})");
        AddBos = config?.AddBosToken ?? settings.AddBos ?? true;
        AddEos = config?.AddEosToken ?? settings.AddEos ?? false;
        ChatTemplate = config?.ChatTemplate ?? settings.ChatTemplate;
        SpecialTokenStrings = SpecialStrings(_pieces, BosId, EosId, UnkId, PadId);
        Normalization = new SpmNormalization(model.AddDummyPrefix, model.RemoveExtraWhitespaces, model.EscapeWhitespaces);

        _encoder = new SpmBpeEncoder(mergeable, _scores, _byteIds, UnkId ?? -1);
        // User-defined pieces are matched even when special tokens are not parsed, as in llama.cpp.
        _specials = new AddedTokenMatcher(Enumerable.Range(0, _pieces.Length)
            .Where(id => _types[id] is TokenType.Control or TokenType.Unknown or TokenType.UserDefined)
            .Select(id => new AddedTokenSpec(id, _pieces[id], Special: _types[id] != TokenType.UserDefined)));
    }

    /// <summary>Loads <c>tokenizer.model</c>, with the folder's tokenizer_config.json settings if given.</summary>
    public static SpmTokenizer Load(string modelPath, TokenizerConfig? config = null)
    {
        byte[] bytes = ReadModelFile(modelPath);
        var model = SentencePieceModelFile.Parse(bytes, modelPath);
        return new SpmTokenizer(model, bytes, config?.AddedTokens ?? Array.Empty<AddedTokenInfo>(), config, new TokenizerSettings(), modelPath);
    }

    /// <summary>
    /// Builds the tokenizer from a vocabulary (GGUF tokenizer.ggml.tokens/scores/token_type with model "llama"):
    /// the same encoder as a tokenizer.model with these pieces.
    /// </summary>
    public static SpmTokenizer FromPieces(IReadOnlyList<string> pieces, IReadOnlyList<float> scores, IReadOnlyList<TokenType> types,
        TokenizerSettings settings, string source = "vocabulary")
    {
        if (pieces.Count == 0) throw new EngineException($"{source}: the vocabulary is empty");
        if (scores.Count != pieces.Count || types.Count != pieces.Count)
            throw new EngineException($"{source}: {pieces.Count} tokens but {scores.Count} scores and {types.Count} token types");
        var typeArray = new TokenType[types.Count];
        for (int i = 0; i < types.Count; i++)
        {
            if (!Enum.IsDefined(types[i])) throw new EngineException($"{source}: token {i} has unknown token type {(int)types[i]}");
            typeArray[i] = types[i];
        }
        for (int i = 0; i < pieces.Count; i++)
            if (string.IsNullOrEmpty(pieces[i])) throw new EngineException($"{source}: token {i} is empty");
        var model = new SentencePieceModelFile
        {
            Pieces = pieces.ToArray(), Scores = scores.ToArray(), Types = typeArray,
            ModelType = SentencePieceModelType.Bpe,
            ByteFallback = typeArray.Contains(TokenType.Byte),
            UnkId = settings.UnkId ?? Array.IndexOf(typeArray, TokenType.Unknown),
            BosId = settings.BosId ?? -1, EosId = settings.EosId ?? -1, PadId = settings.PadId ?? -1,
            NormalizerName = "identity",
            AddDummyPrefix = settings.AddSpacePrefix,
            RemoveExtraWhitespaces = settings.RemoveExtraWhitespaces,
            EscapeWhitespaces = true,
        };
        return new SpmTokenizer(model, null, Array.Empty<AddedTokenInfo>(), null, settings, source);
    }

    static byte[] ReadModelFile(string path)
    {
        try
        {
            var info = new FileInfo(path);
            // Real SentencePiece models are a few MB; refuse anything absurd before reading it into memory.
            if (info.Length > 1L << 30) throw new EngineException($"{path}: {info.Length} bytes is too large for a SentencePiece model");
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new EngineException($"{path}: cannot read: {e.Message}", e);
        }
    }

    /// <summary>A special id from the trainer spec: negative means "none"; beyond the vocabulary is an error.</summary>
    int? ModelId(int id, string name, string source) =>
        id < 0 ? null : id < _pieces.Length ? id
            : throw new EngineException($"{source}: {name} id {id} is out of range (vocabulary of {_pieces.Length})");

    int Lookup(string content, string key, string source) =>
        _idByPiece.TryGetValue(content, out int id) ? id
            : throw new EngineException($"{source}: {key} \"{content}\" is not in the vocabulary");

    internal static IReadOnlyDictionary<string, string> SpecialStrings(IReadOnlyList<string> tokens, int? bos, int? eos, int? unk, int? pad)
    {
        var map = new Dictionary<string, string>();
        if (bos is int b) map["bos_token"] = tokens[b];
        if (eos is int e) map["eos_token"] = tokens[e];
        if (unk is int u) map["unk_token"] = tokens[u];
        if (pad is int p) map["pad_token"] = tokens[p];
        return map;
    }

    static int? ParseBytePiece(string piece) =>
        piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>'
        && byte.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out byte b) ? b : null;

    public override IReadOnlyList<int> EncodeText(string text, bool parseSpecial = true)
    {
        var output = new List<int>();
        bool afterSpecial = true; // the text start counts as "after a special token": it gets the dummy prefix
        foreach (var segment in _specials.Split(text, parseSpecial))
        {
            if (segment.IsToken)
            {
                output.Add(segment.TokenId);
                afterSpecial = true;
                continue;
            }
            string raw = text.Substring(segment.Start, segment.Length);
            if (Normalization.RemoveExtraWhitespaces)
            {
                raw = CollapseSpaces(raw);
                if (raw.Length == 0) continue;
            }
            if (Normalization.AddDummyPrefix && afterSpecial) raw = " " + raw;
            if (Normalization.EscapeWhitespaces) raw = raw.Replace(' ', SpaceSymbol);
            _encoder.Encode(raw, output);
            afterSpecial = false;
        }
        return output;
    }

    /// <summary>SentencePiece's remove_extra_whitespaces: no leading or trailing spaces, runs of spaces become one.</summary>
    static string CollapseSpaces(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (char c in s)
        {
            if (c == ' ' && (sb.Length == 0 || sb[^1] == ' ')) continue;
            sb.Append(c);
        }
        if (sb.Length > 0 && sb[^1] == ' ') sb.Length--;
        return sb.ToString();
    }

    public override string Decode(IEnumerable<int> ids, bool skipSpecial = true)
    {
        var text = new StringBuilder();
        var pending = new List<byte>();
        bool afterSpecial = false;
        foreach (int id in ids)
        {
            if (id < 0 || id >= _pieces.Length) throw new EngineException($"token id {id} is out of range (vocabulary of {_pieces.Length})");
            var type = _types[id];
            if (type is TokenType.Control or TokenType.Unknown or TokenType.UserDefined)
            {
                Flush(text, pending, afterSpecial);
                // User-defined pieces are ordinary text that is matched whole; only control/unknown are "special".
                if (!skipSpecial || type == TokenType.UserDefined) text.Append(_pieces[id].Replace(SpaceSymbol, ' '));
                afterSpecial = true;
            }
            else if (type == TokenType.Byte) pending.Add((byte)_byteOfId[id]);
            else pending.AddRange(Encoding.UTF8.GetBytes(_pieces[id].Replace(SpaceSymbol, ' ')));
        }
        Flush(text, pending, afterSpecial);
        return text.ToString();
    }

    /// <summary>Appends the text pieces decoded so far, dropping the dummy-prefix space that follows a special token.</summary>
    void Flush(StringBuilder text, List<byte> pending, bool afterSpecial)
    {
        if (pending.Count == 0) return;
        string s = Encoding.UTF8.GetString(pending.ToArray());
        pending.Clear();
        if (afterSpecial && Normalization.AddDummyPrefix && s.StartsWith(' ')) s = s[1..];
        text.Append(s);
    }

    /// <summary>Writes tokenizer.model (the original bytes when loaded from one) and tokenizer_config.json.</summary>
    public override void SaveTo(string directory)
    {
        Directory.CreateDirectory(directory);
        byte[] bytes = _modelBytes ?? ToModelFile().Serialize();
        Util.AtomicDirectory.WriteFile(Path.Combine(directory, ModelFileName), tmp => File.WriteAllBytes(tmp, bytes));
        TokenizerConfig.Write(Path.Combine(directory, TokenizerConfig.FileName), this, _config?.Raw, "LlamaTokenizer");
    }

    SentencePieceModelFile ToModelFile() => new()
    {
        Pieces = _pieces, Scores = _scores, Types = _types,
        ModelType = SentencePieceModelType.Bpe,
        ByteFallback = _model.ByteFallback,
        UnkId = UnkId ?? -1, BosId = BosId ?? -1, EosId = EosId ?? -1, PadId = PadId ?? -1,
        NormalizerName = _model.NormalizerName,
        AddDummyPrefix = Normalization.AddDummyPrefix,
        RemoveExtraWhitespaces = Normalization.RemoveExtraWhitespaces,
        EscapeWhitespaces = Normalization.EscapeWhitespaces,
    };
}
