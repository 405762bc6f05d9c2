namespace Engine.Data;

/// <summary>
/// A field value as the file held it, independent of the file format (JSON or Parquet), so one place validates
/// rows and words the errors.
/// </summary>
internal abstract record DataValue
{
    public sealed record Text(string Value) : DataValue;
    public sealed record Bool(bool Value) : DataValue;
    public sealed record Number(double Value) : DataValue;
    public sealed record Messages(IReadOnlyList<ChatTurn> Value) : DataValue;
    public sealed record Null : DataValue;
    /// <summary>Something no field accepts; <paramref name="Description"/> says what it was.</summary>
    public sealed record Other(string Description) : DataValue;

    public static readonly DataValue NullValue = new Null();

    public string Describe() => this switch
    {
        Text t => $"string \"{Shorten(t.Value)}\"",
        Bool b => b.Value ? "true" : "false",
        Number n => $"number {n.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)}",
        Messages m => $"a list of {m.Value.Count} messages",
        Null => "null",
        Other o => o.Description,
        _ => GetType().Name,
    };

    static string Shorten(string s) => s.Length <= 40 ? s : s[..40] + "…";

    /// <summary>
    /// Reads a message list from its elements; each element gives its role/content strings (TRL also accepts the
    /// ShareGPT names from/value, as its maybe_convert_to_chatml does). Returns an <see cref="Other"/> that says
    /// which element is wrong when the list is not a message list.
    /// </summary>
    public static DataValue FromMessageElements<T>(IReadOnlyList<T> elements, Func<T, string, (bool Present, string? Value, string Kind)> field)
    {
        var turns = new List<ChatTurn>(elements.Count);
        for (int i = 0; i < elements.Count; i++)
        {
            var role = field(elements[i], "role");
            if (!role.Present) role = field(elements[i], "from");
            var content = field(elements[i], "content");
            if (!content.Present) content = field(elements[i], "value");
            if (!role.Present || !content.Present)
                return new Other($"a list whose element {i + 1} is not a message with 'role' and 'content' ({(role.Present ? "no 'content'" : "no 'role'")})");
            if (role.Value is null) return new Other($"a list whose message {i + 1} has a 'role' that is {role.Kind}, not a string");
            if (content.Value is null) return new Other($"a list whose message {i + 1} has a 'content' that is {content.Kind}, not a string");
            turns.Add(new ChatTurn(role.Value, content.Value));
        }
        return new Messages(turns);
    }
}

/// <summary>One row of a dataset file, before it is interpreted.</summary>
internal interface IRawRow
{
    RowSource Source { get; }
    IReadOnlyCollection<string> Columns { get; }
    /// <summary>The value of a column; false when the row lacks it.</summary>
    bool TryGet(string column, out DataValue value);
}
