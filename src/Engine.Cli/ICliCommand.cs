namespace Engine.Cli;

/// <summary>One `engine NAME ...` command. Commands are discovered by reflection, one class per file.</summary>
public interface ICliCommand
{
    /// <summary>The words that select this command, e.g. "generate" or "data inspect".</summary>
    string Name { get; }
    string Summary { get; }
    string Usage { get; }
    int Run(CliArgs args);
}
