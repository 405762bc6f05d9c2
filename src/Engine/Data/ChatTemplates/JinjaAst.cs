namespace Engine.Data.ChatTemplates;

// The parsed template: statements (nodes that write output) and expressions (nodes that compute values).
// Every node keeps its source position for error messages.

internal abstract record Expr(SourcePos Pos);
internal sealed record ConstExpr(SourcePos Pos, object? Value) : Expr(Pos);
internal sealed record NameExpr(SourcePos Pos, string Name) : Expr(Pos);
internal sealed record ListExpr(SourcePos Pos, IReadOnlyList<Expr> Items) : Expr(Pos);
internal sealed record TupleExpr(SourcePos Pos, IReadOnlyList<Expr> Items) : Expr(Pos);
internal sealed record DictExpr(SourcePos Pos, IReadOnlyList<(Expr Key, Expr Value)> Pairs) : Expr(Pos);
internal sealed record AttrExpr(SourcePos Pos, Expr Target, string Name) : Expr(Pos);
internal sealed record ItemExpr(SourcePos Pos, Expr Target, Expr Key) : Expr(Pos);
internal sealed record SliceExpr(SourcePos Pos, Expr Target, Expr? Start, Expr? Stop, Expr? Step) : Expr(Pos);
internal sealed record CallArgs(IReadOnlyList<Expr> Positional, IReadOnlyList<(string Name, Expr Value)> Named);
internal sealed record CallExpr(SourcePos Pos, Expr Callee, CallArgs Args) : Expr(Pos);
internal sealed record FilterExpr(SourcePos Pos, Expr Value, string Name, CallArgs Args) : Expr(Pos);
internal sealed record TestExpr(SourcePos Pos, Expr Value, string Name, CallArgs Args, bool Negated) : Expr(Pos);
internal sealed record UnaryExpr(SourcePos Pos, string Op, Expr Operand) : Expr(Pos);
internal sealed record BinaryExpr(SourcePos Pos, string Op, Expr Left, Expr Right) : Expr(Pos);
/// <summary>Chained comparison a &lt; b &lt;= c, evaluated pairwise like Python.</summary>
internal sealed record CompareExpr(SourcePos Pos, Expr First, IReadOnlyList<(string Op, Expr Operand)> Rest) : Expr(Pos);
internal sealed record CondExpr(SourcePos Pos, Expr Condition, Expr Then, Expr? Else) : Expr(Pos);

internal abstract record Node(SourcePos Pos);
internal sealed record TextNode(SourcePos Pos, string Text) : Node(Pos);
internal sealed record EmitNode(SourcePos Pos, Expr Value) : Node(Pos);
internal sealed record IfNode(SourcePos Pos, IReadOnlyList<(Expr Condition, IReadOnlyList<Node> Body)> Branches, IReadOnlyList<Node>? Else) : Node(Pos);
internal sealed record ForNode(SourcePos Pos, IReadOnlyList<string> Targets, Expr Iterable, Expr? Filter,
                               IReadOnlyList<Node> Body, IReadOnlyList<Node>? Else) : Node(Pos);
/// <summary><c>set a = …</c>, <c>set a, b = …</c> (Targets) or <c>set ns.attr = …</c> (Namespace + Attribute).</summary>
internal sealed record SetNode(SourcePos Pos, IReadOnlyList<string> Targets, string? Namespace, string? Attribute, Expr Value) : Node(Pos);
internal sealed record SetBlockNode(SourcePos Pos, string Target, IReadOnlyList<Node> Body) : Node(Pos);
internal sealed record MacroNode(SourcePos Pos, string Name, IReadOnlyList<(string Name, Expr? Default)> Parameters, IReadOnlyList<Node> Body) : Node(Pos);
internal sealed record BreakNode(SourcePos Pos) : Node(Pos);
internal sealed record ContinueNode(SourcePos Pos) : Node(Pos);
