using Engine.Util;

namespace Engine.Data;

/// <summary>Which end of an over-long prompt survives truncation (TRL's truncation_mode).</summary>
public enum TruncationMode { [Spelling("keep_end")] KeepEnd, [Spelling("keep_start")] KeepStart }

/// <summary>
/// How examples become token ids; every command (train, eval, data inspect, --config) takes its defaults from here.
/// max_length 1024 is TRL's (DPOConfig, KTOConfig, SFTConfig). The prompt-first truncation (max_prompt_length 512,
/// keep_end on the prompt) is what TRL's DPOConfig had up to v0.28; TRL ≥ 0.29 has no max_prompt_length and cuts
/// the whole prompt + completion sequence (DPO/SFT keep_start, KTO from the right). Engine keeps the prompt-first
/// rule because it never cuts a completion that fits (docs/trl-parity.md).
/// </summary>
public sealed record TokenizationSettings
{
    public const int DefaultMaxLength = 1024;
    public const int DefaultMaxPromptLength = 512;

    /// <summary>
    /// The prompt limit when only a max length is given: TRL's 512, or half of a smaller max length so that a
    /// completion always has room.
    /// </summary>
    public static int PromptLimitFor(int maxLength) => Math.Min(DefaultMaxPromptLength, maxLength / 2);

    /// <summary>Longest prompt + completion, in tokens (BOS and EOS included); null for no limit.</summary>
    public int? MaxLength { get; init; } = DefaultMaxLength;
    /// <summary>What an over-long prompt is cut to (BOS included); null: as much as leaves room for the longest completion.</summary>
    public int? MaxPromptLength { get; init; } = DefaultMaxPromptLength;
    public TruncationMode TruncationMode { get; init; } = TruncationMode.KeepEnd;
    /// <summary>Start text rows with BOS when the tokenizer adds one (add_bos_token) and the text does not already start with it
    /// (chat-template rows carry the template's own).</summary>
    public bool AddBos { get; init; } = true;
    /// <summary>End text completions with EOS (the model learns to stop), unless they already end with it (chat-template rows
    /// end with the template's end of turn).</summary>
    public bool AddEos { get; init; } = true;

    public static readonly TokenizationSettings Default = new();

    /// <summary>Rejects limits that cannot hold a prompt token and a completion token.</summary>
    public void Validate()
    {
        if (MaxLength is int l && l < 2) throw new EngineException($"max length must be at least 2 tokens (got {l})");
        if (MaxPromptLength is int p && p < 1) throw new EngineException($"max prompt length must be at least 1 token (got {p})");
        if (MaxLength is int l2 && MaxPromptLength is int p2 && p2 >= l2)
            throw new EngineException($"max prompt length ({p2}) must be less than max length ({l2}) to leave room for the completion");
    }

    public string Describe() =>
        $"max_length {MaxLength?.ToString() ?? "none"}, max_prompt_length {MaxPromptLength?.ToString() ?? "none"}, " +
        (TruncationMode == TruncationMode.KeepEnd ? "keep_end" : "keep_start");
}
