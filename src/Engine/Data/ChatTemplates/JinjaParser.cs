namespace Engine.Data.ChatTemplates;

/// <summary>
/// Recursive-descent parser for the part of Jinja2 that chat templates use, with Jinja's operator precedence
/// (or &lt; and &lt; not &lt; comparisons &lt; + - &lt; ~ &lt; * / // % &lt; ** &lt; unary &lt; filters, tests, calls,
/// attributes). Anything outside that subset fails with the construct's name and position.
/// </summary>
internal sealed class JinjaParser
{
    const int MaxNesting = 200;

    static readonly HashSet<string> UnsupportedTags = new(StringComparer.Ordinal)
    {
        "include", "extends", "import", "from", "block", "call", "filter", "with", "do", "autoescape", "trans", "pluralize",
    };

    readonly List<JinjaToken> _t;
    readonly string _origin;
    int _i;
    int _loopDepth;
    int _nesting;

    JinjaParser(List<JinjaToken> tokens, string origin)
    {
        _t = tokens;
        _origin = origin;
    }

    public static IReadOnlyList<Node> Parse(string source, string origin)
    {
        var parser = new JinjaParser(JinjaLexer.Tokenize(source, origin), origin);
        var (body, _) = parser.ParseBody(Array.Empty<string>(), null);
        return body;
    }

    JinjaToken Cur => _t[_i];
    JinjaToken Peek(int k = 1) => _t[Math.Min(_i + k, _t.Count - 1)];

    EngineException Error(JinjaToken at, string message) => TemplateError.At(_origin, at.Pos.Line, at.Pos.Column, message);

    static string Describe(JinjaToken t) => t.Kind switch
    {
        TokenKind.End => "the end of the template",
        TokenKind.BlockEnd => "the end of the tag",
        TokenKind.VarEnd => "'}}'",
        TokenKind.String => $"string '{t.Value}'",
        _ => $"'{t.Value}'",
    };

    bool IsOp(string op) => Cur.Kind == TokenKind.Operator && Cur.Value == op;
    bool IsName(string name) => Cur.Kind == TokenKind.Name && Cur.Value == name;

    JinjaToken Expect(TokenKind kind, string? value, string what)
    {
        var t = Cur;
        if (t.Kind != kind || (value != null && t.Value != value)) throw Error(t, $"expected {what}, found {Describe(t)}");
        _i++;
        return t;
    }

    void ExpectOp(string op) => Expect(TokenKind.Operator, op, $"'{op}'");
    string ExpectName(string what) => Expect(TokenKind.Name, null, what).Value;
    void ExpectBlockEnd(string tag) => Expect(TokenKind.BlockEnd, null, $"the end of the '{tag}' tag ('%}}')");

    /// <summary>Parses nodes until a block tag named in <paramref name="endTags"/>; returns the nodes and that
    /// tag's name (the cursor is left on the tag's name).</summary>
    (List<Node> Body, string EndTag) ParseBody(string[] endTags, (string Tag, JinjaToken At)? opener)
    {
        var body = new List<Node>();
        while (true)
        {
            var t = Cur;
            switch (t.Kind)
            {
                case TokenKind.End:
                    if (opener is { } o)
                        throw Error(o.At, $"unclosed '{o.Tag}' block: expected {string.Join(" or ", endTags.Select(e => $"'{{% {e} %}}'"))} before the end of the template");
                    return (body, "");
                case TokenKind.Text:
                    body.Add(new TextNode(t.Pos, t.Value));
                    _i++;
                    break;
                case TokenKind.VarBegin:
                    _i++;
                    var expr = ParseTupleOrExpression();
                    Expect(TokenKind.VarEnd, null, "'}}'");
                    body.Add(new EmitNode(t.Pos, expr));
                    break;
                case TokenKind.BlockBegin:
                    var name = Peek();
                    if (name.Kind != TokenKind.Name) throw Error(name, $"expected a tag name after '{{%', found {Describe(name)}");
                    if (endTags.Contains(name.Value))
                    {
                        _i++;
                        return (body, name.Value);
                    }
                    _i += 2;
                    body.AddRange(ParseStatement(name));
                    break;
                default:
                    throw Error(t, $"unexpected {Describe(t)}");
            }
        }
    }

    IEnumerable<Node> ParseStatement(JinjaToken tag)
    {
        switch (tag.Value)
        {
            case "if": return new[] { ParseIf(tag) };
            case "for": return new[] { ParseFor(tag) };
            case "set": return new[] { ParseSet(tag) };
            case "macro": return new[] { ParseMacro(tag) };
            case "break" or "continue":
                if (_loopDepth == 0) throw Error(tag, $"'{tag.Value}' outside a 'for' loop");
                ExpectBlockEnd(tag.Value);
                return new Node[] { tag.Value == "break" ? new BreakNode(tag.Pos) : new ContinueNode(tag.Pos) };
            case "generation":
            {
                // transformers' AssistantTracker tag: it only marks assistant text, the body renders as is.
                ExpectBlockEnd("generation");
                var (body, _) = ParseBody(new[] { "endgeneration" }, ("generation", tag));
                _i++;
                ExpectBlockEnd("endgeneration");
                return body;
            }
        }
        if (UnsupportedTags.Contains(tag.Value))
            throw Error(tag, $"the '{tag.Value}' tag is not supported in chat templates");
        if (tag.Value.StartsWith("end", StringComparison.Ordinal) || tag.Value is "else" or "elif")
            throw Error(tag, $"unexpected '{{% {tag.Value} %}}' (no open block it could close)");
        throw Error(tag, $"unknown tag '{tag.Value}'");
    }

    Node ParseIf(JinjaToken tag)
    {
        var branches = new List<(Expr, IReadOnlyList<Node>)>();
        List<Node>? elseBody = null;
        var cond = ParseExpression();
        ExpectBlockEnd("if");
        while (true)
        {
            var (body, end) = ParseBody(new[] { "elif", "else", "endif" }, ("if", tag));
            _i++;
            branches.Add((cond, body));
            if (end == "elif")
            {
                cond = ParseExpression();
                ExpectBlockEnd("elif");
                continue;
            }
            if (end == "else")
            {
                ExpectBlockEnd("else");
                (elseBody, _) = ParseBody(new[] { "endif" }, ("if", tag));
                _i++;
            }
            ExpectBlockEnd("endif");
            return new IfNode(tag.Pos, branches, elseBody);
        }
    }

    Node ParseFor(JinjaToken tag)
    {
        var targets = new List<string>();
        bool paren = IsOp("(");
        if (paren) _i++;
        targets.Add(ExpectName("a loop variable name"));
        while (IsOp(","))
        {
            _i++;
            targets.Add(ExpectName("a loop variable name"));
        }
        if (paren) ExpectOp(")");
        Expect(TokenKind.Name, "in", "'in'");
        var iterable = ParseExpression(withCondition: false);
        Expr? filter = null;
        if (IsName("if"))
        {
            _i++;
            filter = ParseExpression(withCondition: false);
        }
        if (IsName("recursive")) throw Error(Cur, "recursive loops are not supported");
        ExpectBlockEnd("for");
        _loopDepth++;
        var (body, end) = ParseBody(new[] { "else", "endfor" }, ("for", tag));
        _loopDepth--;
        _i++;
        List<Node>? elseBody = null;
        if (end == "else")
        {
            ExpectBlockEnd("else");
            (elseBody, _) = ParseBody(new[] { "endfor" }, ("for", tag));
            _i++;
        }
        ExpectBlockEnd("endfor");
        return new ForNode(tag.Pos, targets, iterable, filter, body, elseBody);
    }

    Node ParseSet(JinjaToken tag)
    {
        string first = ExpectName("a variable name");
        if (IsOp("."))
        {
            _i++;
            string attr = ExpectName("an attribute name");
            ExpectOp("=");
            var value = ParseTupleOrExpression();
            ExpectBlockEnd("set");
            return new SetNode(tag.Pos, Array.Empty<string>(), first, attr, value);
        }
        var targets = new List<string> { first };
        while (IsOp(","))
        {
            _i++;
            targets.Add(ExpectName("a variable name"));
        }
        if (IsOp("="))
        {
            _i++;
            var value = ParseTupleOrExpression();
            ExpectBlockEnd("set");
            return new SetNode(tag.Pos, targets, null, null, value);
        }
        if (targets.Count > 1) throw Error(Cur, "expected '=' after the names of a 'set'");
        if (Cur.Kind == TokenKind.Operator && Cur.Value == "|") throw Error(Cur, "filtered 'set' blocks are not supported");
        ExpectBlockEnd("set");
        var (body, _) = ParseBody(new[] { "endset" }, ("set", tag));
        _i++;
        ExpectBlockEnd("endset");
        return new SetBlockNode(tag.Pos, first, body);
    }

    Node ParseMacro(JinjaToken tag)
    {
        string name = ExpectName("a macro name");
        ExpectOp("(");
        var parameters = new List<(string, Expr?)>();
        while (!IsOp(")"))
        {
            string p = ExpectName("a parameter name");
            Expr? def = null;
            if (IsOp("="))
            {
                _i++;
                def = ParseExpression();
            }
            else if (parameters.Any(x => x.Item2 != null)) throw Error(Cur, $"parameter '{p}' without a default follows one with a default");
            parameters.Add((p, def));
            if (!IsOp(",")) break;
            _i++;
        }
        ExpectOp(")");
        ExpectBlockEnd("macro");
        int loops = _loopDepth;
        _loopDepth = 0;
        var (body, _) = ParseBody(new[] { "endmacro" }, ("macro", tag));
        _loopDepth = loops;
        _i++;
        ExpectBlockEnd("endmacro");
        return new MacroNode(tag.Pos, name, parameters, body);
    }

    // ---- expressions ----

    Expr ParseTupleOrExpression()
    {
        var start = Cur;
        var first = ParseExpression();
        if (!IsOp(",")) return first;
        var items = new List<Expr> { first };
        while (IsOp(","))
        {
            _i++;
            if (Cur.Kind is TokenKind.BlockEnd or TokenKind.VarEnd) break;
            items.Add(ParseExpression());
        }
        return new TupleExpr(start.Pos, items);
    }

    Expr ParseExpression(bool withCondition = true)
    {
        if (++_nesting > MaxNesting) throw Error(Cur, $"expression nested more than {MaxNesting} deep");
        try
        {
            var start = Cur;
            var expr = ParseOr();
            while (withCondition && IsName("if"))
            {
                _i++;
                var cond = ParseOr();
                Expr? otherwise = null;
                if (IsName("else"))
                {
                    _i++;
                    otherwise = ParseExpression();
                }
                expr = new CondExpr(start.Pos, cond, expr, otherwise);
            }
            return expr;
        }
        finally { _nesting--; }
    }

    Expr ParseOr()
    {
        var left = ParseAnd();
        while (IsName("or"))
        {
            var op = Cur;
            _i++;
            left = new BinaryExpr(op.Pos, "or", left, ParseAnd());
        }
        return left;
    }

    Expr ParseAnd()
    {
        var left = ParseNot();
        while (IsName("and"))
        {
            var op = Cur;
            _i++;
            left = new BinaryExpr(op.Pos, "and", left, ParseNot());
        }
        return left;
    }

    Expr ParseNot()
    {
        if (IsName("not"))
        {
            var op = Cur;
            _i++;
            if (++_nesting > MaxNesting) throw Error(op, $"expression nested more than {MaxNesting} deep");
            try { return new UnaryExpr(op.Pos, "not", ParseNot()); }
            finally { _nesting--; }
        }
        return ParseCompare();
    }

    Expr ParseCompare()
    {
        var start = Cur;
        var first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            if (Cur.Kind == TokenKind.Operator && Cur.Value is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                string op = Cur.Value;
                _i++;
                rest.Add((op, ParseMath1()));
            }
            else if (IsName("in"))
            {
                _i++;
                rest.Add(("in", ParseMath1()));
            }
            else if (IsName("not") && Peek().Kind == TokenKind.Name && Peek().Value == "in")
            {
                _i += 2;
                rest.Add(("not in", ParseMath1()));
            }
            else break;
        }
        return rest.Count == 0 ? first : new CompareExpr(start.Pos, first, rest);
    }

    Expr ParseMath1()
    {
        var left = ParseConcat();
        while (Cur.Kind == TokenKind.Operator && Cur.Value is "+" or "-")
        {
            var op = Cur;
            _i++;
            left = new BinaryExpr(op.Pos, op.Value, left, ParseConcat());
        }
        return left;
    }

    Expr ParseConcat()
    {
        var left = ParseMath2();
        while (IsOp("~"))
        {
            var op = Cur;
            _i++;
            left = new BinaryExpr(op.Pos, "~", left, ParseMath2());
        }
        return left;
    }

    Expr ParseMath2()
    {
        var left = ParsePow();
        while (Cur.Kind == TokenKind.Operator && Cur.Value is "*" or "/" or "//" or "%")
        {
            var op = Cur;
            _i++;
            left = new BinaryExpr(op.Pos, op.Value, left, ParsePow());
        }
        return left;
    }

    Expr ParsePow()
    {
        var left = ParseUnary(withFilter: true);
        while (IsOp("**"))
        {
            var op = Cur;
            _i++;
            left = new BinaryExpr(op.Pos, "**", left, ParseUnary(withFilter: true));
        }
        return left;
    }

    Expr ParseUnary(bool withFilter)
    {
        if (++_nesting > MaxNesting) throw Error(Cur, $"expression nested more than {MaxNesting} deep");
        try
        {
            Expr node;
            if (Cur.Kind == TokenKind.Operator && Cur.Value is "-" or "+")
            {
                var op = Cur;
                _i++;
                node = new UnaryExpr(op.Pos, op.Value, ParseUnary(withFilter: false));
            }
            else node = ParsePostfix(ParsePrimary());
            return withFilter ? ParseFilters(node) : node;
        }
        finally { _nesting--; }
    }

    Expr ParsePrimary()
    {
        var t = Cur;
        switch (t.Kind)
        {
            case TokenKind.Name:
                _i++;
                return t.Value switch
                {
                    "true" or "True" => new ConstExpr(t.Pos, true),
                    "false" or "False" => new ConstExpr(t.Pos, false),
                    "none" or "None" => new ConstExpr(t.Pos, null),
                    _ => new NameExpr(t.Pos, t.Value),
                };
            case TokenKind.String:
            {
                _i++;
                string s = t.Value;
                while (Cur.Kind == TokenKind.String) s += _t[_i++].Value; // adjacent literals concatenate
                return new ConstExpr(t.Pos, s);
            }
            case TokenKind.Integer:
            case TokenKind.Float:
                _i++;
                return new ConstExpr(t.Pos, t.Literal);
            case TokenKind.Operator when t.Value == "(":
            {
                _i++;
                if (IsOp(")"))
                {
                    _i++;
                    return new TupleExpr(t.Pos, Array.Empty<Expr>());
                }
                var first = ParseExpression();
                if (IsOp(")"))
                {
                    _i++;
                    return first;
                }
                var items = new List<Expr> { first };
                while (IsOp(","))
                {
                    _i++;
                    if (IsOp(")")) break;
                    items.Add(ParseExpression());
                }
                ExpectOp(")");
                return new TupleExpr(t.Pos, items);
            }
            case TokenKind.Operator when t.Value == "[":
            {
                _i++;
                var items = new List<Expr>();
                while (!IsOp("]"))
                {
                    items.Add(ParseExpression());
                    if (!IsOp(",")) break;
                    _i++;
                }
                ExpectOp("]");
                return new ListExpr(t.Pos, items);
            }
            case TokenKind.Operator when t.Value == "{":
            {
                _i++;
                var pairs = new List<(Expr, Expr)>();
                while (!IsOp("}"))
                {
                    var key = ParseExpression();
                    ExpectOp(":");
                    pairs.Add((key, ParseExpression()));
                    if (!IsOp(",")) break;
                    _i++;
                }
                ExpectOp("}");
                return new DictExpr(t.Pos, pairs);
            }
            default:
                throw Error(t, $"expected an expression, found {Describe(t)}");
        }
    }

    Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            var t = Cur;
            if (IsOp("."))
            {
                _i++;
                var name = Cur;
                if (name.Kind == TokenKind.Name) node = new AttrExpr(t.Pos, node, name.Value);
                else if (name.Kind == TokenKind.Integer) node = new ItemExpr(t.Pos, node, new ConstExpr(name.Pos, name.Literal));
                else throw Error(name, $"expected an attribute name after '.', found {Describe(name)}");
                _i++;
            }
            else if (IsOp("["))
            {
                _i++;
                node = ParseSubscript(t, node);
            }
            else if (IsOp("(")) node = new CallExpr(t.Pos, node, ParseCallArgs());
            else return node;
        }
    }

    Expr ParseSubscript(JinjaToken open, Expr target)
    {
        Expr? start = null, stop = null, step = null;
        if (!IsOp(":")) start = ParseExpression();
        if (!IsOp(":"))
        {
            ExpectOp("]");
            return new ItemExpr(open.Pos, target, start!);
        }
        _i++;
        if (!IsOp(":") && !IsOp("]")) stop = ParseExpression();
        if (IsOp(":"))
        {
            _i++;
            if (!IsOp("]")) step = ParseExpression();
        }
        ExpectOp("]");
        return new SliceExpr(open.Pos, target, start, stop, step);
    }

    CallArgs ParseCallArgs()
    {
        ExpectOp("(");
        var positional = new List<Expr>();
        var named = new List<(string, Expr)>();
        while (!IsOp(")"))
        {
            if (IsOp("*") || IsOp("**")) throw Error(Cur, "*args and **kwargs in calls are not supported");
            if (Cur.Kind == TokenKind.Name && Peek().Kind == TokenKind.Operator && Peek().Value == "=")
            {
                string name = Cur.Value;
                _i += 2;
                named.Add((name, ParseExpression()));
            }
            else
            {
                if (named.Count > 0) throw Error(Cur, "a positional argument follows a keyword argument");
                positional.Add(ParseExpression());
            }
            if (!IsOp(",")) break;
            _i++;
        }
        ExpectOp(")");
        return new CallArgs(positional, named);
    }

    static readonly CallArgs NoArgs = new(Array.Empty<Expr>(), Array.Empty<(string, Expr)>());

    Expr ParseFilters(Expr node)
    {
        while (true)
        {
            var t = Cur;
            if (IsOp("|"))
            {
                _i++;
                var nameTok = Cur;
                string name = ExpectName("a filter name");
                if (!JinjaFilters.IsFilter(name)) throw Error(nameTok, $"unknown filter '{name}'");
                var args = IsOp("(") ? ParseCallArgs() : NoArgs;
                node = new FilterExpr(t.Pos, node, name, args);
            }
            else if (IsName("is"))
            {
                _i++;
                bool negated = false;
                if (IsName("not"))
                {
                    negated = true;
                    _i++;
                }
                var nameTok = Cur;
                string name = ExpectName("a test name");
                if (!JinjaFilters.IsTest(name)) throw Error(nameTok, $"unknown test '{name}'");
                CallArgs args = NoArgs;
                if (IsOp("(")) args = ParseCallArgs();
                else if ((Cur.Kind is TokenKind.String or TokenKind.Integer or TokenKind.Float
                          || (Cur.Kind == TokenKind.Name && Cur.Value is not ("else" or "or" or "and" or "if" or "is" or "in" or "not"))
                          || (Cur.Kind == TokenKind.Operator && Cur.Value is "[" or "{")))
                    args = new CallArgs(new[] { ParsePostfix(ParsePrimary()) }, Array.Empty<(string, Expr)>());
                node = new TestExpr(t.Pos, node, name, args, negated);
            }
            else if (IsOp("(")) node = new CallExpr(t.Pos, node, ParseCallArgs());
            else return node;
        }
    }
}
