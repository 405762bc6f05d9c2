using Engine.Data.ChatTemplates;

namespace Engine.Tests.ChatTemplates;

/// <summary>The Jinja subset, construct by construct, against outputs worked out from Jinja's rules with
/// transformers' settings (trim_blocks, lstrip_blocks, no autoescape, no trailing newline).</summary>
public class JinjaSyntaxTests
{
    static readonly ChatMessage[] Messages = { new("system", "S"), new("user", "U1"), new("assistant", "A1") };

    static string R(string template, Dictionary<string, object?>? vars = null, bool addGenerationPrompt = false)
        => ChatTemplate.Parse(template, "inline").Render(Messages, addGenerationPrompt, vars ?? new Dictionary<string, object?>());

    [Theory]
    [InlineData("{% if true %}\nA\n{% endif %}\nB", "A\nB")]                   // trim_blocks: newline after %} dropped
    [InlineData("  {% if true %}\n  x\n  {% endif %}\n", "  x\n")]           // lstrip_blocks + trailing newline dropped
    [InlineData("a {% if true %}b{% endif %}", "a b")]                         // not at a line start: spaces kept
    [InlineData("{{ 'x' }}  {% if true %}y{% endif %}", "x  y")]               // after an expression: kept
    [InlineData("{{ 'x' }}\ny", "x\ny")]                                      // no trimming after }}
    [InlineData("a  {%- if true -%}  b  {%- endif %}", "ab")]                  // explicit '-' strips both sides
    [InlineData("a\n  {{- 'b' -}}  \n c", "abc")]
    [InlineData("  {%+ if true %}x{% endif %}", "  x")]                        // '+' disables lstrip_blocks
    [InlineData("{% if true +%}\nx{% endif %}", "\nx")]                        // '+' disables trim_blocks
    [InlineData("a{# note #}\nb", "ab")]                                      // comments are trimmed like blocks
    [InlineData("  {# note #}\nb", "b")]
    [InlineData("hello\n\n", "hello\n")]                                      // only one trailing newline goes
    [InlineData("x\r\ny", "x\ny")]
    [InlineData("{% raw %}{{ not parsed }}{% endraw %}", "{{ not parsed }}")]
    public void Whitespace_control_follows_transformers_settings(string template, string expected)
        => Assert.Equal(expected, R(template));

    [Theory]
    [InlineData("{{ 7 // 2 }} {{ 7 / 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 7 - 2 * 3 }}", "3 3.5 2 1024 1")]
    [InlineData("{{ 'a' ~ 1 ~ none }} {{ 'ab' * 2 }} {{ 'a' + 'b' }} {{ [1] + [2] }}", "a1None abab ab [1, 2]")]
    [InlineData("{{ 0 or 'x' }} {{ 1 and 'y' }} {{ not 0 }} {{ none }} {{ undefined_thing }}|", "x y True None |")]
    [InlineData("{{ 'a' in 'cat' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }} {{ 'x' in nothing }}", "True True True True False")]
    [InlineData("{{ 1 < 2 <= 2 }} {{ 1 < 2 > 3 }} {{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ true == 1 }}", "True False True True True")]
    [InlineData("{{ 'y' if 1 > 0 else 'n' }}{{ 'y' if false }}|", "y|")]
    [InlineData("{{ 'a' + ' b ' | trim + 'c' }}", "abc")]                     // filters bind tighter than +
    [InlineData("{{ -3 | abs }} {{ (1, 2) }} {{ [1, 'a', none, true, 1.5] }}", "3 (1, 2) [1, 'a', None, True, 1.5]")]
    [InlineData("{{ 'hello'[1:3] }} {{ 'hello'[-1] }} {{ [1, 2, 3][::-1] }} {{ [1, 2, 3][1:] }} {{ 'abc'[::2] }}", "el o [3, 2, 1] [2, 3] ac")]
    [InlineData("{{ 0.1 + 0.2 }} {{ 1e20 }} {{ 2.0 }} {{ 1 / 3 }}", "0.30000000000000004 1e+20 2.0 0.3333333333333333")]
    [InlineData("{{ \"it's\" }} {{ 'tab\\there' }} {{ 'a' 'b' }}", "it's tab\there ab")]
    public void Expressions_follow_python_semantics(string template, string expected) => Assert.Equal(expected, R(template));

    [Theory]
    [InlineData("{{ '  x  ' | trim }}|{{ 'abc' | length }}|{{ [1, 2] | length }}|{{ 'Ab' | upper }}{{ 'Ab' | lower }}", "x|3|2|ABab")]
    [InlineData("{{ missing | default('d') }} {{ '' | default('d') }} {{ '' | default('d', true) }} {{ none | default('d') }}", "d  d None")]
    [InlineData("{{ [1, 2, 3] | first }} {{ [1, 2, 3] | last }} {{ ['a', 'b'] | join(', ') }} {{ 'ab' | list }}", "1 3 a, b ['a', 'b']")]
    [InlineData("{{ messages | map(attribute='role') | join(',') }}", "system,user,assistant")]
    [InlineData("{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }}", "['U1']")]
    [InlineData("{{ messages | rejectattr('role', 'in', ['system']) | list | length }}", "2")]
    [InlineData("{{ [3, 1, 2] | sort }} {{ [3, 1, 2] | max }} {{ [1, 1, 2] | unique | list }} {{ '3' | int + 1 }} {{ 'x' | int }}", "[1, 2, 3] 3 [1, 2] 4 0")]
    [InlineData("{{ 'hi' | capitalize }} {{ 'a b' | title }} {{ 'aXa' | replace('a', 'b') }} {{ '<&>' | e }}", "Hi A B bXb &lt;&amp;&gt;")]
    [InlineData("{{ {'b': 1, 'a': 'x'} | items | list }}", "[('b', 1), ('a', 'x')]")]
    public void Filters(string template, string expected) => Assert.Equal(expected, R(template));

    [Fact]
    public void Tojson_is_transformers_json_dumps()
    {
        Assert.Equal("{\"a\": 1, \"b\": [true, null, \"é\\\"\\n\"], \"c\": 1.5}",
            R("{{ {'a': 1, 'b': [true, none, 'é\"\\n'], 'c': 1.5} | tojson }}"));
        Assert.Equal("{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {}\n}", R("{{ {'a': [1, 2], 'b': {}} | tojson(indent=2) }}"));
        Assert.Equal("{\"a\": 2, \"b\": 1}", R("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}"));
        Assert.Equal("\"\\u00e9\"", R("{{ 'é' | tojson(ensure_ascii=true) }}"));
    }

    [Theory]
    [InlineData("{{ x is defined }} {{ y is defined }} {{ y is undefined }} {{ none is none }} {{ x is not none }}", "True False True True True")]
    [InlineData("{{ 'a' is string }} {{ 1 is number }} {{ 1 is integer }} {{ 1.5 is float }} {{ true is boolean }} {{ {} is mapping }}", "True True True True True True")]
    [InlineData("{{ 4 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(2) }} {{ 'a' is in ['a'] }} {{ 1 is eq 1 }}", "True True True False True True")]
    [InlineData("{{ x is true }} {{ x is false }} {{ [] is sequence }} {{ 'A' is upper }}", "False False True True")]
    public void Tests(string template, string expected)
        => Assert.Equal(expected, R(template, new Dictionary<string, object?> { ["x"] = "value" }));

    [Theory]
    [InlineData("{{ ' a b '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ 'ab'.startswith('a') }}{{ 'ab'.endswith(('x', 'b')) }}", "a b|a|TrueTrue")]
    [InlineData("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }}", "['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b c']")]
    [InlineData("{{ 'Ab'.upper() }}{{ 'Ab'.lower() }} {{ 'a-b'.replace('-', '+') }} {{ ', '.join(['x', 'y']) }} {{ 'abc'.find('c') }}", "ABab a+b x, y 2")]
    [InlineData("{{ messages[0].role }} {{ messages[1]['content'] }} {{ messages[-1].content }} {{ messages[9] is defined }}", "system U1 A1 False")]
    [InlineData("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}{{ {'a': 1}.get('z', 'no') }}", "a=1;b=2;no")]
    public void Methods_and_access(string template, string expected) => Assert.Equal(expected, R(template));

    [Fact]
    public void Loops_expose_the_loop_variable()
    {
        Assert.Equal("0 1 True False 3 3|1 2 False False 3 2|2 3 False True 3 1|",
            R("{% for x in ['a', 'b', 'c'] %}{{ loop.index0 }} {{ loop.index }} {{ loop.first }} {{ loop.last }} {{ loop.length }} {{ loop.revindex }}|{% endfor %}"));
        Assert.Equal("^ab abc bc$ ", R("{% for x in ['a', 'b', 'c'] %}{{ loop.previtem | default('^') }}{{ x }}{{ loop.nextitem | default('$') }} {% endfor %}"));
        Assert.Equal("xyx", R("{% for i in range(3) %}{{ loop.cycle('x', 'y') }}{% endfor %}"));
        Assert.Equal("empty", R("{% for x in [] %}{{ x }}{% else %}empty{% endfor %}"));
        Assert.Equal("13", R("{% for x in [1, 2, 3, 4] if x is odd %}{{ x }}{% endfor %}"));
        Assert.Equal("1-3", R("{% for x in [1, 2, 3, 4] %}{% if x == 2 %}{{ '-' }}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}"));
        Assert.Equal("0,1|1,1|", R("{% for i in range(2) %}{% for j in range(1, 2) %}{{ i }},{{ j }}|{% endfor %}{% endfor %}"));
        Assert.Equal("ab", R("{% for c in 'ab' %}{{ c }}{% endfor %}"));
    }

    [Fact]
    public void Set_is_scoped_to_the_loop_and_namespace_escapes_it()
    {
        Assert.Equal("1", R("{% set x = 1 %}{% for i in [1, 2] %}{% set x = 2 %}{% endfor %}{{ x }}"));
        Assert.Equal("2", R("{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}"));
        Assert.Equal("True S", R("{% set ns = namespace(found=false, text='') %}{% for m in messages %}{% if m.role == 'system' %}" +
                                 "{% set ns.found = true %}{% set ns.text = m.content %}{% endif %}{% endfor %}{{ ns.found }} {{ ns.text }}"));
        Assert.Equal("1 2", R("{% set a, b = 1, 2 %}{{ a }} {{ b }}"));
        Assert.Equal("[hi]", R("{% set block %}hi{% endset %}[{{ block }}]"));
        Assert.Equal("U1 A1", R("{% set rest = messages[1:] %}{{ rest | map(attribute='content') | join(' ') }}"));
    }

    [Fact]
    public void Macros_take_positional_keyword_and_default_arguments()
        => Assert.Equal("Hi Bob! Hi Al?", R("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }}"));

    [Fact]
    public void Variables_bring_lists_dicts_and_numbers()
    {
        var vars = new Dictionary<string, object?>
        {
            ["tools"] = new List<object?> { new Dictionary<string, object?> { ["name"] = "get_weather", ["n"] = 3 } },
            ["ratio"] = 0.5f,
        };
        Assert.Equal("get_weather 3 0.5 [{\"name\": \"get_weather\", \"n\": 3}]",
            R("{% for t in tools %}{{ t.name }} {{ t['n'] }}{% endfor %} {{ ratio }} {{ tools | tojson }}", vars));
        Assert.Equal("None", R("{{ tools }}")); // transformers passes tools=None when there are none
        Assert.Equal("True", R("{{ add_generation_prompt }}", addGenerationPrompt: true));
    }

    [Fact]
    public void Strftime_now_uses_the_clock()
    {
        var t = ChatTemplate.Parse("{{ strftime_now('%d %b %Y') }}", "inline").WithClock(() => new DateTime(2024, 7, 26, 9, 30, 0));
        Assert.Equal("26 Jul 2024", t.Render(Array.Empty<ChatMessage>(), false, new Dictionary<string, object?>()));
    }
}
