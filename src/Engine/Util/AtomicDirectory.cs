namespace Engine.Util;

/// <summary>
/// Writes a directory so that it appears complete or not at all: contents go to a hidden sibling, which is
/// renamed into place at the end. A crash mid-write leaves only the hidden temporary, never a broken target.
/// </summary>
public static class AtomicDirectory
{
    public static void Write(string target, Action<string> writeContents, bool replace = false)
    {
        target = Path.GetFullPath(target.TrimEnd('/'));
        string parent = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(parent);
        string tmp = Path.Combine(parent, $".{Path.GetFileName(target)}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(tmp);
        try
        {
            writeContents(tmp);
            if (Directory.Exists(target))
            {
                if (!replace) throw new EngineException($"{target}: already exists");
                string old = tmp + ".old";
                Directory.Move(target, old);
                Directory.Move(tmp, target);
                Directory.Delete(old, true);
            }
            else Directory.Move(tmp, target);
        }
        catch
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
            throw;
        }
    }

    /// <summary>Writes a file through a temporary sibling and a rename.</summary>
    public static void WriteFile(string target, Action<string> writeContents)
    {
        string tmp = target + $".tmp-{Environment.ProcessId}";
        try
        {
            writeContents(tmp);
            File.Move(tmp, target, overwrite: true);
        }
        catch
        {
            if (File.Exists(tmp)) File.Delete(tmp);
            throw;
        }
    }
}
