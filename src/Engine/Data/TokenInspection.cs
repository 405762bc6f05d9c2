using System.Text.Json;
using Engine.Tokenization;

namespace Engine.Data;

/// <summary>Text and its token ids, each with its vocabulary piece ("▁It", "Ġis", "&lt;s&gt;").</summary>
public sealed record TokenizedText(string Text, IReadOnlyList<int> Ids, IReadOnlyList<string> Pieces);

/// <summary>
/// What `engine tokenize` shows: text → ids and pieces as the model's tokenizer gives them (like llama.cpp's
/// llama-tokenize), or a conversation rendered with the model's chat template and tokenized as transformers'
/// apply_chat_template(tokenize=True) does (special-token text parsed, nothing added: the template writes BOS).
/// </summary>
public static class TokenInspection
{
    /// <param name="parseSpecial">special-token text ("&lt;s&gt;", "&lt;|im_end|&gt;") becomes its id, as Hugging Face tokenizers do</param>
    /// <param name="addBos">BOS first when the tokenizer adds one (add_bos_token); EOS last when it adds one (add_eos_token)</param>
    public static TokenizedText Text(TextTokenizer tokenizer, string text, bool parseSpecial = true, bool addBos = true)
    {
        var ids = new List<int>();
        if (addBos && tokenizer.AddBos && tokenizer.BosId is int bos) ids.Add(bos);
        ids.AddRange(tokenizer.EncodeText(text, parseSpecial));
        if (tokenizer.AddEos && tokenizer.EosId is int eos) ids.Add(eos);
        return new TokenizedText(text, ids, Pieces(tokenizer, ids));
    }

    /// <param name="origin">names the tokenizer in errors</param>
    public static TokenizedText Chat(TextTokenizer tokenizer, IReadOnlyList<ChatTurn> conversation, bool addGenerationPrompt, string origin)
    {
        var renderer = ChatRendering.ForTokenizer(tokenizer, origin)
            ?? throw new EngineException($"{origin}: the tokenizer has no chat template (no chat_template in tokenizer_config.json)");
        string text = renderer.Render(conversation, addGenerationPrompt);
        var ids = tokenizer.EncodeText(text, parseSpecial: true).ToList();
        return new TokenizedText(text, ids, Pieces(tokenizer, ids));
    }

    /// <summary>The vocabulary string of each id (the decoded text where the vocabulary has no entry).</summary>
    public static IReadOnlyList<string> Pieces(TextTokenizer tokenizer, IReadOnlyList<int> ids) =>
        ids.Select(id => id >= 0 && id < tokenizer.Tokens.Count ? tokenizer.Tokens[id] : tokenizer.Decode(new[] { id }, skipSpecial: false)).ToList();

    /// <summary>A conversation file: a JSON list of {"role": …, "content": …} messages.</summary>
    public static IReadOnlyList<ChatTurn> ReadConversation(string path)
    {
        if (!File.Exists(path)) throw new EngineException($"{path}: conversation file not found");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new EngineException($"{path}: not valid JSON ({e.Message})"); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Array)
                throw new EngineException($"{path}: expected a JSON list of {{\"role\", \"content\"}} messages, got {root.ValueKind.ToString().ToLowerInvariant()}");
            var turns = new List<ChatTurn>();
            int i = 0;
            foreach (var m in root.EnumerateArray())
            {
                i++;
                if (m.ValueKind != JsonValueKind.Object || !m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String
                    || !m.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
                    throw new EngineException($"{path}: message {i} must be an object with string 'role' and 'content'");
                turns.Add(new ChatTurn(role.GetString()!, content.GetString()!));
            }
            if (turns.Count == 0) throw new EngineException($"{path}: the conversation has no messages");
            return turns;
        }
    }
}
