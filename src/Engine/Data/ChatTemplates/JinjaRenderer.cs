using System.Text;

namespace Engine.Data.ChatTemplates;

/// <summary>
/// Walks the parsed template and writes its output. Scoping follows Jinja: a for loop's body has its own scope
/// (a <c>set</c> inside a loop is not seen after it: hence <c>namespace()</c>), <c>if</c> has none, macros
/// see the template's top-level variables. No autoescaping. Work, output and call depth are bounded so that a
/// hostile template fails with an error instead of hanging or exhausting memory.
/// </summary>
internal sealed class JinjaRenderer
{
    public const int MaxOutputChars = 16 << 20;
    public const int MaxSequenceLength = 1_000_000;
    const long MaxSteps = 5_000_000;
    const int MaxCallDepth = 64;

    enum Flow { Normal, Break, Continue }

    sealed class Scope
    {
        readonly Dictionary<string, object?> _vars = new(StringComparer.Ordinal);
        public Scope? Parent { get; }
        public Scope(Scope? parent) => Parent = parent;

        public bool TryGet(string name, out object? value)
        {
            for (var s = this; s != null; s = s.Parent)
                if (s._vars.TryGetValue(name, out value)) return true;
            value = null;
            return false;
        }

        public void Set(string name, object? value) => _vars[name] = value;
    }

    public string Origin { get; }
    readonly Scope _root;
    StringBuilder _out = new();
    long _steps;
    int _callDepth;

    public JinjaRenderer(string origin, IReadOnlyDictionary<string, object?> globals)
    {
        Origin = origin;
        _root = new Scope(null);
        foreach (var (k, v) in globals) _root.Set(k, v);
    }

    /// <summary>Adds a built-in unless the caller's variables already define that name.</summary>
    public void DefineGlobal(string name, object? value)
    {
        if (!_root.TryGet(name, out _)) _root.Set(name, value);
    }

    public EngineException Fail(SourcePos pos, string message) => TemplateError.At(Origin, pos.Line, pos.Column, message);

    public string Render(IReadOnlyList<Node> nodes)
    {
        _out = new StringBuilder();
        RenderNodes(nodes, _root);
        return _out.ToString();
    }

    void Step(SourcePos pos)
    {
        if (++_steps > MaxSteps) throw Fail(pos, $"the template did more than {MaxSteps} steps (a runaway loop?)");
    }

    void Write(string s, SourcePos pos)
    {
        if (_out.Length + (long)s.Length > MaxOutputChars)
            throw Fail(pos, $"the rendered text would exceed {MaxOutputChars} characters");
        _out.Append(s);
    }

    Flow RenderNodes(IReadOnlyList<Node> nodes, Scope scope)
    {
        foreach (var node in nodes)
        {
            Step(node.Pos);
            switch (node)
            {
                case TextNode t:
                    Write(t.Text, t.Pos);
                    break;
                case EmitNode e:
                    Write(JinjaValue.Str(Eval(e.Value, scope)), e.Pos);
                    break;
                case IfNode i:
                {
                    IReadOnlyList<Node>? chosen = i.Else;
                    foreach (var (cond, body) in i.Branches)
                        if (JinjaValue.Truthy(Eval(cond, scope)))
                        {
                            chosen = body;
                            break;
                        }
                    if (chosen != null)
                    {
                        var flow = RenderNodes(chosen, scope);
                        if (flow != Flow.Normal) return flow;
                    }
                    break;
                }
                case ForNode f:
                    RenderFor(f, scope);
                    break;
                case SetNode s:
                    Assign(s, Eval(s.Value, scope), scope);
                    break;
                case SetBlockNode b:
                    scope.Set(b.Target, Capture(() => RenderNodes(b.Body, scope)));
                    break;
                case MacroNode m:
                    scope.Set(m.Name, MakeMacro(m));
                    break;
                case BreakNode:
                    return Flow.Break;
                case ContinueNode:
                    return Flow.Continue;
                default:
                    throw Fail(node.Pos, $"internal: unknown node {node.GetType().Name}");
            }
        }
        return Flow.Normal;
    }

    string Capture(Action render)
    {
        var saved = _out;
        _out = new StringBuilder();
        try
        {
            render();
            return _out.ToString();
        }
        finally { _out = saved; }
    }

    void Assign(SetNode s, object? value, Scope scope)
    {
        if (s.Namespace is { } nsName)
        {
            if (!scope.TryGet(nsName, out var target) || target is not JinjaNamespace ns)
                throw Fail(s.Pos, $"cannot set '{nsName}.{s.Attribute}': '{nsName}' is not a namespace() object");
            ns.Values[s.Attribute!] = value;
            return;
        }
        if (s.Targets.Count == 1)
        {
            scope.Set(s.Targets[0], value);
            return;
        }
        var items = Unpack(value, s.Targets.Count, s.Pos);
        for (int i = 0; i < items.Count; i++) scope.Set(s.Targets[i], items[i]);
    }

    IList<object?> Unpack(object? value, int count, SourcePos pos)
    {
        if (value is not IList<object?> items)
            throw Fail(pos, $"cannot unpack a {JinjaValue.TypeName(value)} into {count} names");
        if (items.Count != count)
            throw Fail(pos, $"cannot unpack {items.Count} values into {count} names");
        return items;
    }

    void RenderFor(ForNode f, Scope scope)
    {
        var items = Iterate(Eval(f.Iterable, scope), f.Iterable.Pos);
        var loopScope = new Scope(scope);
        if (f.Filter != null)
        {
            var kept = new List<object?>();
            foreach (var item in items)
            {
                Step(f.Pos);
                BindTargets(f, item, loopScope);
                if (JinjaValue.Truthy(Eval(f.Filter, loopScope))) kept.Add(item);
            }
            items = kept;
        }
        if (items.Count == 0)
        {
            if (f.Else != null) RenderNodes(f.Else, scope);
            return;
        }
        var loop = new LoopContext { Items = items };
        for (int i = 0; i < items.Count; i++)
        {
            Step(f.Pos);
            loop.Index0 = i;
            BindTargets(f, items[i], loopScope);
            loopScope.Set("loop", loop);
            if (RenderNodes(f.Body, loopScope) == Flow.Break) break;
        }
    }

    void BindTargets(ForNode f, object? item, Scope loopScope)
    {
        if (f.Targets.Count == 1)
        {
            loopScope.Set(f.Targets[0], item);
            return;
        }
        var parts = Unpack(item, f.Targets.Count, f.Pos);
        for (int t = 0; t < parts.Count; t++) loopScope.Set(f.Targets[t], parts[t]);
    }

    /// <summary>Python iteration: lists and tuples by item, strings by character, dicts by key; undefined is empty.</summary>
    public List<object?> Iterate(object? value, SourcePos pos) => value switch
    {
        IList<object?> l => new List<object?>(l),
        string s => s.Select(c => (object?)c.ToString()).ToList(),
        JinjaDict d => d.Keys.Select(k => (object?)k).ToList(),
        Undefined => new List<object?>(),
        _ => throw Fail(pos, $"a {JinjaValue.TypeName(value)} is not iterable"),
    };

    JinjaCallable MakeMacro(MacroNode m) => new(m.Name, (args, kwargs, pos) =>
    {
        if (_callDepth >= MaxCallDepth) throw Fail(pos, $"macro calls nested more than {MaxCallDepth} deep");
        if (args.Count > m.Parameters.Count)
            throw Fail(pos, $"macro '{m.Name}' takes {m.Parameters.Count} arguments, got {args.Count}");
        var macroScope = new Scope(_root);
        for (int i = 0; i < m.Parameters.Count; i++)
        {
            var (name, def) = m.Parameters[i];
            object? value;
            if (i < args.Count)
            {
                if (kwargs.ContainsKey(name)) throw Fail(pos, $"macro '{m.Name}' got '{name}' twice");
                value = args[i];
            }
            else if (kwargs.TryGetValue(name, out var kw)) value = kw;
            else value = def != null ? Eval(def, macroScope) : new Undefined(name);
            macroScope.Set(name, value);
        }
        foreach (var k in kwargs.Keys)
            if (!m.Parameters.Any(p => p.Name == k)) throw Fail(pos, $"macro '{m.Name}' has no parameter '{k}'");
        _callDepth++;
        try { return Capture(() => RenderNodes(m.Body, macroScope)); }
        finally { _callDepth--; }
    });

    // ---- expressions ----

    object? Eval(Expr e, Scope scope)
    {
        switch (e)
        {
            case ConstExpr c: return c.Value;
            case NameExpr n: return scope.TryGet(n.Name, out var v) ? v : new Undefined(n.Name);
            case ListExpr l: return l.Items.Select(x => Eval(x, scope)).ToList();
            case TupleExpr t: return t.Items.Select(x => Eval(x, scope)).ToArray();
            case DictExpr d:
            {
                var dict = new JinjaDict();
                foreach (var (k, val) in d.Pairs)
                {
                    var key = Eval(k, scope);
                    if (key is not (string or long or double or bool)) throw Fail(k.Pos, $"a {JinjaValue.TypeName(key)} cannot be a dict key here");
                    dict.Set(key, Eval(val, scope));
                }
                return dict;
            }
            case AttrExpr a: return JinjaMembers.GetAttr(this, Eval(a.Target, scope), a.Name, a.Pos);
            case ItemExpr i: return JinjaMembers.GetItem(this, Eval(i.Target, scope), Eval(i.Key, scope), i.Pos);
            case SliceExpr s:
                return JinjaMembers.Slice(this, Eval(s.Target, scope),
                    s.Start is null ? null : Eval(s.Start, scope), s.Stop is null ? null : Eval(s.Stop, scope),
                    s.Step is null ? null : Eval(s.Step, scope), s.Pos);
            case CallExpr call:
            {
                var callee = Eval(call.Callee, scope);
                var (args, kwargs) = EvalArgs(call.Args, scope);
                if (callee is JinjaCallable fn) return fn.Invoke(args, kwargs, call.Pos);
                if (callee is Undefined u) throw Fail(call.Pos, $"'{u.Name}' is undefined (not a function this engine provides)");
                throw Fail(call.Pos, $"a {JinjaValue.TypeName(callee)} is not callable");
            }
            case FilterExpr f:
            {
                var value = Eval(f.Value, scope);
                var (args, kwargs) = EvalArgs(f.Args, scope);
                return JinjaFilters.Filter(this, f.Name, value, args, kwargs, f.Pos);
            }
            case TestExpr t:
            {
                var value = Eval(t.Value, scope);
                var (args, kwargs) = EvalArgs(t.Args, scope);
                bool result = JinjaFilters.Test(this, t.Name, value, args, kwargs, t.Pos);
                return t.Negated ? !result : result;
            }
            case UnaryExpr u: return Unary(u, Eval(u.Operand, scope));
            case BinaryExpr b when b.Op == "and":
            {
                var left = Eval(b.Left, scope);
                return JinjaValue.Truthy(left) ? Eval(b.Right, scope) : left;
            }
            case BinaryExpr b when b.Op == "or":
            {
                var left = Eval(b.Left, scope);
                return JinjaValue.Truthy(left) ? left : Eval(b.Right, scope);
            }
            case BinaryExpr b: return JinjaOperators.Binary(this, b.Op, Eval(b.Left, scope), Eval(b.Right, scope), b.Pos);
            case CompareExpr c:
            {
                var left = Eval(c.First, scope);
                foreach (var (op, operand) in c.Rest)
                {
                    var right = Eval(operand, scope);
                    if (!JinjaOperators.Compare(this, op, left, right, c.Pos)) return false;
                    left = right;
                }
                return true;
            }
            case CondExpr c:
                return JinjaValue.Truthy(Eval(c.Condition, scope)) ? Eval(c.Then, scope)
                     : c.Else is null ? new Undefined("conditional expression") : Eval(c.Else, scope);
            default:
                throw Fail(e.Pos, $"internal: unknown expression {e.GetType().Name}");
        }
    }

    (List<object?>, Dictionary<string, object?>) EvalArgs(CallArgs a, Scope scope)
    {
        var args = a.Positional.Select(x => Eval(x, scope)).ToList();
        var kwargs = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (name, value) in a.Named) kwargs[name] = Eval(value, scope);
        return (args, kwargs);
    }

    object? Unary(UnaryExpr u, object? v)
    {
        if (u.Op == "not") return !JinjaValue.Truthy(v);
        if (v is Undefined und) throw Fail(u.Pos, $"'{und.Name}' is undefined");
        return (u.Op, v) switch
        {
            ("-", long l) => (object)-l,
            ("-", double d) => -d,
            ("-", bool b) => b ? -1L : 0L,
            ("+", long or double) => v,
            ("+", bool b) => b ? 1L : 0L,
            _ => throw Fail(u.Pos, $"bad operand type for unary {u.Op}: '{JinjaValue.TypeName(v)}'"),
        };
    }
}
