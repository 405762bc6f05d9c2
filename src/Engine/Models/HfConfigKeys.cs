namespace Engine.Models;

/// <summary>
/// config.json keys that Engine does not read because they cannot change the forward pass. Every other key is either
/// read (and its value checked) by <see cref="HfConfigReader"/> or refused with an error that names it: a key Engine
/// ignored silently could make it compute something other than what Hugging Face computes for the same checkpoint.
/// </summary>
public static class HfConfigKeys
{
    /// <summary>PretrainedConfig bookkeeping, task heads and generation defaults: no effect on a causal LM's logits.</summary>
    static readonly string[] Generic =
    {
        "_name_or_path", "transformers_version", "use_cache", "initializer_range", "return_dict", "output_hidden_states",
        "output_attentions", "torchscript", "id2label", "label2id", "problem_type", "tokenizer_class", "task_specific_params",
        "finetuning_task", "chunk_size_feed_forward", "is_encoder_decoder", "is_decoder", "add_cross_attention",
        "tie_encoder_decoder", "prefix", "sep_token_id", "decoder_start_token_id", "pruned_heads", "cross_attention_hidden_size",
        "_attn_implementation_autoset", "attn_implementation", "_attn_implementation", "unsloth_fixed", "unsloth_version",
        // generation defaults some older checkpoints store in config.json (generation_config.json's job today)
        "max_length", "min_length", "do_sample", "early_stopping", "num_beams", "num_beam_groups", "diversity_penalty",
        "temperature", "top_k", "top_p", "typical_p", "repetition_penalty", "length_penalty", "no_repeat_ngram_size",
        "encoder_no_repeat_ngram_size", "bad_words_ids", "num_return_sequences", "output_scores", "return_dict_in_generate",
        "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values", "exponential_decay_length_penalty",
        "suppress_tokens", "begin_suppress_tokens",
    };

    /// <summary>Keys a family's HF config class keeps that do not affect its forward.</summary>
    static readonly Dictionary<ModelFamily, string[]> PerFamily = new()
    {
        // pretraining_tp only reorders Llama's matmuls (the same sums); SmolLM2's nanotron leftovers are not HF keys at all.
        [ModelFamily.Llama] = new[] { "pretraining_tp", "rope_interleaved", "is_llama_config" },
        [ModelFamily.Mistral] = Array.Empty<string>(),
        [ModelFamily.Qwen2] = Array.Empty<string>(),
        [ModelFamily.Qwen3] = Array.Empty<string>(),
        // the KV cache class generate() uses; Engine's cache applies the sliding window itself
        [ModelFamily.Gemma3] = new[] { "cache_implementation" },
    };

    public static bool IsHarmless(ModelFamily family, string key) =>
        Generic.Contains(key, StringComparer.Ordinal) || PerFamily[family].Contains(key, StringComparer.Ordinal);
}
