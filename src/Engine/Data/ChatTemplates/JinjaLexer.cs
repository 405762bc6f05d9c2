using System.Globalization;
using System.Text;

namespace Engine.Data.ChatTemplates;

internal enum TokenKind { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Operator, End }

internal readonly record struct JinjaToken(TokenKind Kind, string Value, SourcePos Pos, object? Literal = null);

/// <summary>
/// Splits a template into text and tag tokens, applying whitespace control the way Hugging Face configures Jinja
/// for chat templates: trim_blocks (the first newline after a block or comment tag is dropped), lstrip_blocks
/// (spaces and tabs between a line start and a block or comment tag are dropped), explicit <c>-</c> (strip all
/// whitespace on that side) and <c>+</c> (keep it), and no trailing newline at the end of the source.
/// </summary>
internal sealed class JinjaLexer
{
    const int MaxTemplateLength = 1 << 20;

    readonly string _src;
    readonly string _origin;
    readonly List<JinjaToken> _tokens = new();
    readonly int[] _lineStarts;
    int _pos;

    JinjaLexer(string source, string origin)
    {
        _origin = origin;
        // Jinja reads the source line by line: \r\n and \r become \n, and one trailing newline is dropped
        // (keep_trailing_newline is off).
        var s = source.Replace("\r\n", "\n").Replace('\r', '\n');
        if (s.EndsWith('\n')) s = s[..^1];
        _src = s;
        var starts = new List<int> { 0 };
        for (int i = 0; i < s.Length; i++) if (s[i] == '\n') starts.Add(i + 1);
        _lineStarts = starts.ToArray();
    }

    public static List<JinjaToken> Tokenize(string source, string origin)
    {
        if (source.Length > MaxTemplateLength)
            throw TemplateError.At(origin, 1, 1, $"the template is {source.Length} characters long; the limit is {MaxTemplateLength}");
        var lexer = new JinjaLexer(source, origin);
        lexer.Run();
        return lexer._tokens;
    }

    SourcePos PosOf(int index)
    {
        int line = Array.BinarySearch(_lineStarts, index);
        if (line < 0) line = ~line - 1;
        return new SourcePos(line + 1, index - _lineStarts[line] + 1);
    }

    EngineException Error(int index, string message)
    {
        var p = PosOf(index);
        return TemplateError.At(_origin, p.Line, p.Column, message);
    }

    void Run()
    {
        while (_pos < _src.Length)
        {
            int tag = FindTagStart(_pos);
            int textEnd = tag < 0 ? _src.Length : tag;
            int textStart = _pos;
            string text = _src[textStart..textEnd];
            if (tag >= 0)
            {
                char kind = _src[tag + 1];
                char modifier = tag + 2 < _src.Length ? _src[tag + 2] : '\0';
                if (modifier == '-') text = text.TrimEnd();
                else if (modifier != '+' && kind != '{') text = LstripBlock(text, textStart);
            }
            if (text.Length > 0) _tokens.Add(new JinjaToken(TokenKind.Text, text, PosOf(textStart)));
            if (tag < 0) break;
            switch (_src[tag + 1])
            {
                case '#': Comment(tag); break;
                case '{': Tag(tag, TokenKind.VarBegin, TokenKind.VarEnd, '}'); break;
                default:
                    if (!TryRaw(tag)) Tag(tag, TokenKind.BlockBegin, TokenKind.BlockEnd, '%');
                    break;
            }
        }
        _tokens.Add(new JinjaToken(TokenKind.End, "", PosOf(_src.Length)));
    }

    int FindTagStart(int from)
    {
        for (int i = from; i + 1 < _src.Length; i++)
            if (_src[i] == '{' && (_src[i + 1] == '{' || _src[i + 1] == '%' || _src[i + 1] == '#')) return i;
        return -1;
    }

    /// <summary>lstrip_blocks: drop spaces/tabs before a block or comment tag when nothing else precedes it on its line.</summary>
    string LstripBlock(string text, int textStart)
    {
        int lastNewline = text.LastIndexOf('\n');
        bool atLineStart = lastNewline >= 0 || textStart == 0 || _src[textStart - 1] == '\n';
        if (!atLineStart) return text;
        int from = lastNewline + 1;
        for (int i = from; i < text.Length; i++)
            if (text[i] != ' ' && text[i] != '\t') return text;
        return text[..from];
    }

    /// <summary>After a tag: <c>-</c> strips all following whitespace; otherwise trim_blocks drops one newline
    /// after block and comment tags (not after <c>}}</c>, and not with <c>+</c>).</summary>
    void AfterTag(char modifier, bool isBlockOrComment)
    {
        if (modifier == '-')
            while (_pos < _src.Length && char.IsWhiteSpace(_src[_pos])) _pos++;
        else if (modifier != '+' && isBlockOrComment && _pos < _src.Length && _src[_pos] == '\n')
            _pos++;
    }

    void Comment(int tag)
    {
        int end = _src.IndexOf("#}", tag + 2, StringComparison.Ordinal);
        if (end < 0) throw Error(tag, "unclosed comment: '{#' without '#}'");
        char modifier = end - 1 >= tag + 3 && _src[end - 1] is '-' or '+' ? _src[end - 1] : '\0';
        _pos = end + 2;
        AfterTag(modifier, true);
    }

    /// <summary><c>{% raw %}…{% endraw %}</c>: the body is text, tags in it are not interpreted.</summary>
    bool TryRaw(int tag)
    {
        int i = tag + 2;
        if (i < _src.Length && (_src[i] == '-' || _src[i] == '+')) i++;
        while (i < _src.Length && char.IsWhiteSpace(_src[i])) i++;
        if (string.CompareOrdinal(_src, i, "raw", 0, 3) != 0) return false;
        i += 3;
        while (i < _src.Length && char.IsWhiteSpace(_src[i])) i++;
        char openRight = '\0';
        if (i < _src.Length && (_src[i] == '-' || _src[i] == '+')) openRight = _src[i++];
        if (string.CompareOrdinal(_src, i, "%}", 0, 2) != 0) return false;
        int bodyStart = i + 2;
        // Find {%[-+]? endraw [-+]?%}
        for (int j = bodyStart; (j = _src.IndexOf("{%", j, StringComparison.Ordinal)) >= 0; j += 2)
        {
            int k = j + 2;
            char closeLeft = '\0';
            if (k < _src.Length && (_src[k] == '-' || _src[k] == '+')) closeLeft = _src[k++];
            while (k < _src.Length && char.IsWhiteSpace(_src[k])) k++;
            if (string.CompareOrdinal(_src, k, "endraw", 0, 6) != 0) continue;
            k += 6;
            while (k < _src.Length && char.IsWhiteSpace(_src[k])) k++;
            char closeRight = '\0';
            if (k < _src.Length && (_src[k] == '-' || _src[k] == '+')) closeRight = _src[k++];
            if (string.CompareOrdinal(_src, k, "%}", 0, 2) != 0) continue;
            int b = bodyStart;
            if (openRight == '-') while (b < j && char.IsWhiteSpace(_src[b])) b++;
            else if (openRight != '+' && b < j && _src[b] == '\n') b++;
            string body = _src[b..j];
            if (closeLeft == '-') body = body.TrimEnd();
            else if (closeLeft != '+') body = LstripBlock(body, b);
            if (body.Length > 0) _tokens.Add(new JinjaToken(TokenKind.Text, body, PosOf(b)));
            _pos = k + 2;
            AfterTag(closeRight, true);
            return true;
        }
        throw Error(tag, "unclosed '{% raw %}': no '{% endraw %}' follows");
    }

    void Tag(int tag, TokenKind begin, TokenKind end, char closeChar)
    {
        _tokens.Add(new JinjaToken(begin, _src.Substring(tag, 2), PosOf(tag)));
        int i = tag + 2;
        if (i < _src.Length && (_src[i] == '-' || _src[i] == '+')) i++;
        int depth = 0;
        while (true)
        {
            while (i < _src.Length && char.IsWhiteSpace(_src[i])) i++;
            if (i >= _src.Length)
                throw Error(tag, $"unclosed tag: '{_src.Substring(tag, 2)}' without '{closeChar}}}'");
            if (depth == 0)
            {
                char modifier = '\0';
                int j = i;
                if ((_src[j] == '-' || _src[j] == '+') && j + 2 < _src.Length && _src[j + 1] == closeChar && _src[j + 2] == '}')
                {
                    modifier = _src[j];
                    j++;
                }
                if (j + 1 < _src.Length && _src[j] == closeChar && _src[j + 1] == '}')
                {
                    _tokens.Add(new JinjaToken(end, _src.Substring(i, j + 2 - i), PosOf(i)));
                    _pos = j + 2;
                    AfterTag(modifier, end == TokenKind.BlockEnd);
                    return;
                }
            }
            i = LexExpressionToken(i, ref depth);
        }
    }

    static readonly string[] Operators =
        { "**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", ".", ",", ":", "|", "(", ")", "[", "]", "{", "}" };

    int LexExpressionToken(int i, ref int depth)
    {
        char c = _src[i];
        var pos = PosOf(i);
        if (char.IsAsciiLetter(c) || c == '_')
        {
            int j = i + 1;
            while (j < _src.Length && (char.IsAsciiLetterOrDigit(_src[j]) || _src[j] == '_')) j++;
            _tokens.Add(new JinjaToken(TokenKind.Name, _src[i..j], pos));
            return j;
        }
        if (char.IsAsciiDigit(c)) return LexNumber(i, pos);
        if (c == '\'' || c == '"') return LexString(i, pos);
        foreach (var op in Operators)
        {
            if (string.CompareOrdinal(_src, i, op, 0, op.Length) != 0) continue;
            if (op is "(" or "[" or "{") depth++;
            else if (op is ")" or "]" or "}")
            {
                if (depth == 0) throw Error(i, $"unexpected '{op}'");
                depth--;
            }
            _tokens.Add(new JinjaToken(TokenKind.Operator, op, pos));
            return i + op.Length;
        }
        throw Error(i, $"unexpected character '{c}' in an expression");
    }

    int LexNumber(int i, SourcePos pos)
    {
        int j = i;
        while (j < _src.Length && (char.IsAsciiDigit(_src[j]) || _src[j] == '_')) j++;
        bool isFloat = false;
        if (j + 1 < _src.Length && _src[j] == '.' && char.IsAsciiDigit(_src[j + 1]))
        {
            isFloat = true;
            j++;
            while (j < _src.Length && (char.IsAsciiDigit(_src[j]) || _src[j] == '_')) j++;
        }
        if (j < _src.Length && (_src[j] == 'e' || _src[j] == 'E'))
        {
            int k = j + 1;
            if (k < _src.Length && (_src[k] == '+' || _src[k] == '-')) k++;
            if (k < _src.Length && char.IsAsciiDigit(_src[k]))
            {
                isFloat = true;
                j = k;
                while (j < _src.Length && char.IsAsciiDigit(_src[j])) j++;
            }
        }
        string text = _src[i..j].Replace("_", "");
        if (isFloat)
            _tokens.Add(new JinjaToken(TokenKind.Float, text, pos, double.Parse(text, CultureInfo.InvariantCulture)));
        else if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long v))
            _tokens.Add(new JinjaToken(TokenKind.Integer, text, pos, v));
        else throw Error(i, $"integer literal {text} is too large");
        return j;
    }

    /// <summary>Python string literal escapes, as Jinja's lexer applies them.</summary>
    int LexString(int i, SourcePos pos)
    {
        char quote = _src[i];
        var sb = new StringBuilder();
        int j = i + 1;
        while (true)
        {
            if (j >= _src.Length) throw Error(i, "unterminated string literal");
            char c = _src[j];
            if (c == quote) { j++; break; }
            if (c != '\\') { sb.Append(c); j++; continue; }
            if (j + 1 >= _src.Length) throw Error(i, "unterminated string literal");
            char e = _src[j + 1];
            j += 2;
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case '0': sb.Append('\0'); break;
                case '\n': break; // line continuation
                case 'x': sb.Append(Hex(ref j, 2, i)); break;
                case 'u': sb.Append(Hex(ref j, 4, i)); break;
                case 'U': sb.Append(Hex(ref j, 8, i)); break;
                default: sb.Append('\\').Append(e); break; // Python keeps unknown escapes as written
            }
        }
        _tokens.Add(new JinjaToken(TokenKind.String, sb.ToString(), pos, sb.ToString()));
        return j;
    }

    string Hex(ref int j, int digits, int start)
    {
        if (j + digits > _src.Length || !int.TryParse(_src.AsSpan(j, digits), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int code)
            || code > 0x10FFFF)
            throw Error(start, "bad escape sequence in a string literal");
        j += digits;
        return char.ConvertFromUtf32(code);
    }
}
