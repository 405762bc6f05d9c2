namespace Engine.Data.ChatTemplates;

/// <summary>Builds the user-facing errors of template parsing and rendering: origin, line and column first.</summary>
internal static class TemplateError
{
    public static EngineException At(string origin, int line, int column, string message)
        => new($"chat template {origin}, line {line}, column {column}: {message}");
}

/// <summary>A position in the template source (1-based line and column).</summary>
internal readonly record struct SourcePos(int Line, int Column);
