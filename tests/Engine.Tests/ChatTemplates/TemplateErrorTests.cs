using Engine.Data.ChatTemplates;

namespace Engine.Tests.ChatTemplates;

/// <summary>What the interpreter does not support, or the template gets wrong, fails with an EngineException that
/// names the construct, the position and the template's origin.</summary>
public class TemplateErrorTests
{
    const string Origin = "models/x/tokenizer_config.json";

    static EngineException ParseError(string template)
        => Assert.Throws<EngineException>(() => ChatTemplate.Parse(template, Origin));

    static EngineException RenderError(string template, params ChatMessage[] messages)
        => Assert.Throws<EngineException>(() => ChatTemplate.Parse(template, Origin)
            .Render(messages, false, new Dictionary<string, object?>()));

    [Fact]
    public void Unknown_filter_is_named_with_its_position()
    {
        var ex = ParseError("{% for m in messages %}\n  {{ m.content | frobnicate }}\n{% endfor %}");
        Assert.Contains("unknown filter 'frobnicate'", ex.Message);
        Assert.Contains("line 2, column 18", ex.Message);
        Assert.Contains(Origin, ex.Message);
    }

    [Fact]
    public void Unknown_test_is_named()
        => Assert.Contains("unknown test 'frob'", ParseError("{{ 1 is frob }}").Message);

    [Fact]
    public void Unclosed_block_points_at_its_opening_tag()
    {
        var ex = ParseError("ok\n{% for m in messages %}{% if m %}{{ m }}{% endif %}");
        Assert.Contains("unclosed 'for' block", ex.Message);
        Assert.Contains("'{% endfor %}'", ex.Message);
        Assert.Contains("line 2, column 4", ex.Message);
    }

    [Fact]
    public void Unclosed_if_and_tags_and_strings()
    {
        Assert.Contains("unclosed 'if' block", ParseError("{% if true %}x{% else %}y").Message);
        Assert.Contains("unclosed tag", ParseError("{{ messages ").Message);
        Assert.Contains("unterminated string", ParseError("{{ 'abc }}").Message);
        Assert.Contains("unclosed comment", ParseError("{# note").Message);
    }

    [Theory]
    [InlineData("{% include 'other.jinja' %}", "the 'include' tag is not supported")]
    [InlineData("{% extends 'base' %}", "the 'extends' tag is not supported")]
    [InlineData("{% call foo() %}x{% endcall %}", "the 'call' tag is not supported")]
    [InlineData("{% frob %}", "unknown tag 'frob'")]
    [InlineData("{% endfor %}", "unexpected '{% endfor %}'")]
    [InlineData("{% break %}", "'break' outside a 'for' loop")]
    [InlineData("{{ 1 + }}", "expected an expression, found '}}'")]
    [InlineData("{{ f(*args) }}", "*args and **kwargs")]
    [InlineData("{% for x in y recursive %}{% endfor %}", "recursive loops are not supported")]
    public void Unsupported_or_malformed_syntax_fails_at_parse(string template, string message)
    {
        var ex = ParseError(template);
        Assert.Contains(message, ex.Message);
        Assert.Contains("line 1, column", ex.Message);
    }

    [Fact]
    public void Runtime_errors_name_the_problem_and_position()
    {
        Assert.Contains("'foo' is undefined", RenderError("{{ foo.bar }}").Message);
        Assert.Contains("unsupported operand types for +: 'str' and 'int'", RenderError("{{ 'a' + 1 }}").Message);
        Assert.Contains("'nope' is undefined (not a function this engine provides)", RenderError("\n\n  {{ nope() }}").Message);
        Assert.Contains("line 3, column", RenderError("\n\n  {{ nope() }}").Message);
        Assert.Contains("templates cannot modify lists", RenderError("{% set l = [] %}{{ l.append(1) }}").Message);
        Assert.Contains("division by zero", RenderError("{{ 1 / 0 }}").Message);
        Assert.Contains("is not a namespace()", RenderError("{% set x = 1 %}{% set x.y = 2 %}").Message);
        // An empty conversation: messages[0] is undefined, and reading its role is an error (as in Jinja).
        Assert.Contains("is undefined", RenderError(RealTemplates.Llama2Chat).Message);
    }

    [Fact]
    public void Raise_exception_carries_the_templates_message()
    {
        var ex = RenderError("{{ raise_exception('System role not supported') }}", new ChatMessage("system", "s"));
        Assert.Contains("System role not supported", ex.Message);
        Assert.Contains(Origin, ex.Message);
    }

    [Fact]
    public void Hostile_templates_hit_limits_instead_of_hanging()
    {
        Assert.Contains("exceeds the limit", RenderError("{% for i in range(100000000) %}{% endfor %}").Message);
        Assert.Contains("would be built", RenderError("{{ 'x' * 100000000 }}").Message);
        Assert.Contains("steps", RenderError("{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}").Message);
        Assert.Contains("nested more than", ParseError("{{ " + new string('(', 5000) + "1" + new string(')', 5000) + " }}").Message);
        Assert.Contains("macro calls nested", RenderError("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").Message);
    }
}
