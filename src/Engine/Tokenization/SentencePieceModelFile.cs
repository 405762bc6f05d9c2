namespace Engine.Tokenization;

/// <summary>SentencePiece's TrainerSpec.ModelType.</summary>
public enum SentencePieceModelType { Unigram = 1, Bpe = 2, Word = 3, Char = 4 }

/// <summary>
/// The parts of SentencePiece's <c>ModelProto</c> (sentencepiece_model.proto) that tokenization uses: the
/// pieces, the trainer spec's model type, byte fallback and special ids, and the normalizer's whitespace flags.
/// Parsed and written with our own wire-format code so that a hostile file fails with a clear message.
/// </summary>
internal sealed class SentencePieceModelFile
{
    public required string[] Pieces { get; init; }
    public required float[] Scores { get; init; }
    public required TokenType[] Types { get; init; }
    // Defaults are the proto2 defaults of sentencepiece_model.proto.
    public SentencePieceModelType ModelType { get; init; } = SentencePieceModelType.Unigram;
    public bool ByteFallback { get; init; }
    public bool TreatWhitespaceAsSuffix { get; init; }
    public int UnkId { get; init; } = 0;
    public int BosId { get; init; } = 1;
    public int EosId { get; init; } = 2;
    public int PadId { get; init; } = -1;
    public string NormalizerName { get; init; } = "nmt_nfkc";
    public bool AddDummyPrefix { get; init; } = true;
    public bool RemoveExtraWhitespaces { get; init; } = true;
    public bool EscapeWhitespaces { get; init; } = true;

    // ModelProto field numbers.
    const int ModelPieces = 1, ModelTrainerSpec = 2, ModelNormalizerSpec = 3;
    const int PiecePiece = 1, PieceScore = 2, PieceType = 3;
    const int TrainerModelType = 3, TrainerVocabSize = 4, TrainerWhitespaceAsSuffix = 24, TrainerByteFallback = 35,
        TrainerUnkId = 40, TrainerBosId = 41, TrainerEosId = 42, TrainerPadId = 43,
        TrainerUnkPiece = 45, TrainerBosPiece = 46, TrainerEosPiece = 47, TrainerPadPiece = 48;
    const int NormName = 1, NormAddDummyPrefix = 3, NormRemoveExtraWhitespaces = 4, NormEscapeWhitespaces = 5;

    public static SentencePieceModelFile Parse(ReadOnlySpan<byte> data, string source)
    {
        var pieces = new List<string>();
        var scores = new List<float>();
        var types = new List<TokenType>();
        var model = new MutableSpecs();
        bool sawTrainer = false;
        var reader = new ProtobufReader(data, source);
        while (!reader.AtEnd)
        {
            var (field, wire) = reader.ReadKey();
            switch (field)
            {
                case ModelPieces:
                    reader.Expect(wire, WireType.LengthDelimited, "pieces");
                    var pieceBytes = reader.ReadLengthDelimited(out int pieceOffset);
                    var (text, score, type) = ParsePiece(pieceBytes, source, pieceOffset, pieces.Count);
                    pieces.Add(text); scores.Add(score); types.Add(type);
                    break;
                case ModelTrainerSpec:
                    reader.Expect(wire, WireType.LengthDelimited, "trainer_spec");
                    var trainerBytes = reader.ReadLengthDelimited(out int trainerOffset);
                    ParseTrainerSpec(trainerBytes, source, trainerOffset, model);
                    sawTrainer = true;
                    break;
                case ModelNormalizerSpec:
                    reader.Expect(wire, WireType.LengthDelimited, "normalizer_spec");
                    var normBytes = reader.ReadLengthDelimited(out int normOffset);
                    ParseNormalizerSpec(normBytes, source, normOffset, model);
                    break;
                default:
                    reader.Skip(wire);
                    break;
            }
        }
        if (pieces.Count == 0) throw new EngineException($"{source}: not a SentencePiece model (no pieces found)");
        // Pieces come first in the file, so a file cut short usually loses the trainer spec.
        if (!sawTrainer) throw new EngineException($"{source}: SentencePiece model has no trainer_spec (truncated file?)");
        return new SentencePieceModelFile
        {
            Pieces = pieces.ToArray(), Scores = scores.ToArray(), Types = types.ToArray(),
            ModelType = model.ModelType, ByteFallback = model.ByteFallback, TreatWhitespaceAsSuffix = model.WhitespaceAsSuffix,
            UnkId = model.UnkId, BosId = model.BosId, EosId = model.EosId, PadId = model.PadId,
            NormalizerName = model.NormalizerName, AddDummyPrefix = model.AddDummyPrefix,
            RemoveExtraWhitespaces = model.RemoveExtraWhitespaces, EscapeWhitespaces = model.EscapeWhitespaces,
        };
    }

    sealed class MutableSpecs
    {
        public SentencePieceModelType ModelType = SentencePieceModelType.Unigram;
        public bool ByteFallback, WhitespaceAsSuffix;
        public int UnkId = 0, BosId = 1, EosId = 2, PadId = -1;
        public string NormalizerName = "nmt_nfkc";
        public bool AddDummyPrefix = true, RemoveExtraWhitespaces = true, EscapeWhitespaces = true;
    }

    static (string Text, float Score, TokenType Type) ParsePiece(ReadOnlySpan<byte> data, string source, int offset, int index)
    {
        string? text = null;
        float score = 0;
        var type = TokenType.Normal;
        var reader = new ProtobufReader(data, source, offset);
        while (!reader.AtEnd)
        {
            var (field, wire) = reader.ReadKey();
            switch (field)
            {
                case PiecePiece:
                    reader.Expect(wire, WireType.LengthDelimited, $"pieces[{index}].piece");
                    text = reader.ReadString();
                    break;
                case PieceScore:
                    reader.Expect(wire, WireType.Fixed32, $"pieces[{index}].score");
                    score = reader.ReadFloat();
                    break;
                case PieceType:
                    reader.Expect(wire, WireType.Varint, $"pieces[{index}].type");
                    ulong t = reader.ReadVarint();
                    if (t < 1 || t > 6) throw reader.Error($"pieces[{index}] has unknown type {t}");
                    type = (TokenType)(int)t;
                    break;
                default:
                    reader.Skip(wire);
                    break;
            }
        }
        if (string.IsNullOrEmpty(text)) throw new EngineException($"{source}: corrupt protobuf at byte {offset}: pieces[{index}] has no piece text");
        return (text, score, type);
    }

    static void ParseTrainerSpec(ReadOnlySpan<byte> data, string source, int offset, MutableSpecs m)
    {
        var reader = new ProtobufReader(data, source, offset);
        while (!reader.AtEnd)
        {
            var (field, wire) = reader.ReadKey();
            switch (field)
            {
                case TrainerModelType:
                    reader.Expect(wire, WireType.Varint, "trainer_spec.model_type");
                    ulong t = reader.ReadVarint();
                    if (t < 1 || t > 4) throw reader.Error($"trainer_spec.model_type {t} is not a SentencePiece model type");
                    m.ModelType = (SentencePieceModelType)(int)t;
                    break;
                case TrainerWhitespaceAsSuffix: reader.Expect(wire, WireType.Varint, "trainer_spec.treat_whitespace_as_suffix"); m.WhitespaceAsSuffix = reader.ReadBool(); break;
                case TrainerByteFallback: reader.Expect(wire, WireType.Varint, "trainer_spec.byte_fallback"); m.ByteFallback = reader.ReadBool(); break;
                case TrainerUnkId: reader.Expect(wire, WireType.Varint, "trainer_spec.unk_id"); m.UnkId = reader.ReadInt32(); break;
                case TrainerBosId: reader.Expect(wire, WireType.Varint, "trainer_spec.bos_id"); m.BosId = reader.ReadInt32(); break;
                case TrainerEosId: reader.Expect(wire, WireType.Varint, "trainer_spec.eos_id"); m.EosId = reader.ReadInt32(); break;
                case TrainerPadId: reader.Expect(wire, WireType.Varint, "trainer_spec.pad_id"); m.PadId = reader.ReadInt32(); break;
                default: reader.Skip(wire); break;
            }
        }
    }

    static void ParseNormalizerSpec(ReadOnlySpan<byte> data, string source, int offset, MutableSpecs m)
    {
        var reader = new ProtobufReader(data, source, offset);
        while (!reader.AtEnd)
        {
            var (field, wire) = reader.ReadKey();
            switch (field)
            {
                case NormName: reader.Expect(wire, WireType.LengthDelimited, "normalizer_spec.name"); m.NormalizerName = reader.ReadString(); break;
                case NormAddDummyPrefix: reader.Expect(wire, WireType.Varint, "normalizer_spec.add_dummy_prefix"); m.AddDummyPrefix = reader.ReadBool(); break;
                case NormRemoveExtraWhitespaces: reader.Expect(wire, WireType.Varint, "normalizer_spec.remove_extra_whitespaces"); m.RemoveExtraWhitespaces = reader.ReadBool(); break;
                case NormEscapeWhitespaces: reader.Expect(wire, WireType.Varint, "normalizer_spec.escape_whitespaces"); m.EscapeWhitespaces = reader.ReadBool(); break;
                default: reader.Skip(wire); break;
            }
        }
    }

    /// <summary>Writes a ModelProto that SentencePiece (and Microsoft.ML.Tokenizers) can load.</summary>
    public byte[] Serialize()
    {
        var model = new ProtobufWriter();
        for (int i = 0; i < Pieces.Length; i++)
        {
            var piece = new ProtobufWriter();
            piece.WriteString(PiecePiece, Pieces[i]);
            piece.WriteFloat(PieceScore, Scores[i]);
            if (Types[i] != TokenType.Normal) piece.WriteVarintField(PieceType, (ulong)Types[i]);
            model.WriteMessage(ModelPieces, piece);
        }

        var trainer = new ProtobufWriter();
        trainer.WriteVarintField(TrainerModelType, (ulong)ModelType);
        trainer.WriteInt32(TrainerVocabSize, Pieces.Length);
        if (TreatWhitespaceAsSuffix) trainer.WriteBool(TrainerWhitespaceAsSuffix, true);
        trainer.WriteBool(TrainerByteFallback, ByteFallback);
        trainer.WriteInt32(TrainerUnkId, UnkId);
        trainer.WriteInt32(TrainerBosId, BosId);
        trainer.WriteInt32(TrainerEosId, EosId);
        trainer.WriteInt32(TrainerPadId, PadId);
        // The piece strings, so that SentencePiece's own checks of the special ids agree with the vocabulary.
        WritePieceName(trainer, TrainerUnkPiece, UnkId);
        WritePieceName(trainer, TrainerBosPiece, BosId);
        WritePieceName(trainer, TrainerEosPiece, EosId);
        WritePieceName(trainer, TrainerPadPiece, PadId);
        model.WriteMessage(ModelTrainerSpec, trainer);

        var normalizer = new ProtobufWriter();
        normalizer.WriteString(NormName, NormalizerName);
        normalizer.WriteBool(NormAddDummyPrefix, AddDummyPrefix);
        normalizer.WriteBool(NormRemoveExtraWhitespaces, RemoveExtraWhitespaces);
        normalizer.WriteBool(NormEscapeWhitespaces, EscapeWhitespaces);
        model.WriteMessage(ModelNormalizerSpec, normalizer);
        return model.ToArray();
    }

    void WritePieceName(ProtobufWriter w, int field, int id)
    {
        if (id >= 0 && id < Pieces.Length) w.WriteString(field, Pieces[id]);
    }
}
