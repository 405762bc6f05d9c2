namespace Engine;

/// <summary>
/// A problem with the user's input (a file, a flag, a dataset row). The message names the input and says
/// what is wrong; the CLI prints it without a stack trace and exits non-zero.
/// </summary>
public class EngineException : Exception
{
    public EngineException(string message) : base(message) { }
    public EngineException(string message, Exception inner) : base(message, inner) { }
}
