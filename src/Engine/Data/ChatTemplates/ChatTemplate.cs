using System.Collections;

namespace Engine.Data.ChatTemplates;

/// <summary>
/// A model's chat template (the Jinja source of <c>chat_template</c> in tokenizer_config.json), rendered the way
/// transformers' apply_chat_template renders it: trim_blocks and lstrip_blocks on, no autoescaping, loop controls,
/// <c>raise_exception</c>, <c>strftime_now</c> and transformers' <c>tojson</c>. Parse once, render per row.
/// Unsupported syntax fails at <see cref="Parse"/> with the construct, line, column and origin.
/// </summary>
public sealed class ChatTemplate
{
    readonly IReadOnlyList<Node> _nodes;

    public string Origin { get; }
    public string Source { get; }

    /// <summary>The clock behind <c>strftime_now</c> (local time, as transformers uses).</summary>
    public Func<DateTime> Clock { get; }

    ChatTemplate(string source, string origin, IReadOnlyList<Node> nodes, Func<DateTime> clock)
    {
        Source = source;
        Origin = origin;
        _nodes = nodes;
        Clock = clock;
    }

    /// <summary>The same template with another clock behind <c>strftime_now</c> (for reproducible renders).</summary>
    public ChatTemplate WithClock(Func<DateTime> clock) => new(Source, Origin, _nodes, clock);

    /// <param name="origin">Where the template came from, for error messages (e.g. a tokenizer_config.json path).</param>
    public static ChatTemplate Parse(string source, string origin)
        => new(source, origin, JinjaParser.Parse(source, origin), () => DateTime.Now);

    /// <summary>
    /// Renders a conversation. <paramref name="variables"/> supplies the rest of the template's context, typically
    /// <c>bos_token</c> and <c>eos_token</c> (strings), and options such as <c>tools</c> or <c>enable_thinking</c>.
    /// Values may be null, bool, integers, floating point, strings, lists, dictionaries or <see cref="ChatMessage"/>.
    /// As in transformers, <c>tools</c> and <c>documents</c> are None unless given.
    /// </summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyDictionary<string, object?> variables)
    {
        var globals = new Dictionary<string, object?>(StringComparer.Ordinal) { ["tools"] = null, ["documents"] = null };
        foreach (var (k, v) in variables) globals[k] = Convert(v, k, 0);
        globals["messages"] = messages.Select(m => (object?)MessageDict(m)).ToList();
        globals["add_generation_prompt"] = addGenerationPrompt;
        var renderer = new JinjaRenderer(Origin, globals);
        JinjaGlobals.AddTo(renderer, Clock);
        return renderer.Render(_nodes);
    }

    static JinjaDict MessageDict(ChatMessage m)
    {
        var d = new JinjaDict();
        d.Set("role", m.Role);
        d.Set("content", m.Content);
        return d;
    }

    /// <summary>Turns caller values into the template's value model.</summary>
    static object? Convert(object? v, string name, int depth)
    {
        if (depth > 64) throw new EngineException($"chat template variable '{name}' is nested too deeply");
        switch (v)
        {
            case null or bool or string or long or double: return v;
            case int or short or byte or sbyte or ushort or uint: return System.Convert.ToInt64(v);
            case float f: return (double)f;
            case decimal m: return (double)m;
            case ChatMessage cm: return MessageDict(cm);
            case IDictionary dict:
            {
                var d = new JinjaDict();
                foreach (DictionaryEntry e in dict)
                {
                    var key = Convert(e.Key, name, depth + 1);
                    if (key is not (string or long or double or bool))
                        throw new EngineException($"chat template variable '{name}' has a dictionary key that is not a string or number");
                    d.Set(key, Convert(e.Value, name, depth + 1));
                }
                return d;
            }
            case IEnumerable seq:
            {
                var list = new List<object?>();
                foreach (var x in seq) list.Add(Convert(x, name, depth + 1));
                return list;
            }
            default:
                throw new EngineException($"chat template variable '{name}' has a value of type {v.GetType().Name}, which templates cannot use");
        }
    }
}
