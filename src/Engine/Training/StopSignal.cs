using System.Runtime.InteropServices;

namespace Engine.Training;

/// <summary>
/// A request to stop a run early, checked by the trainer after each optimizer step. <see cref="ListenToProcess"/>
/// connects it to SIGINT (Ctrl-C) and SIGTERM: the first signal asks the trainer to finish the current step, write a
/// checkpoint and stop; a second one ends the process at once (its checkpoints are written aside and renamed, so
/// the newest complete one stays intact).
/// </summary>
public sealed class StopSignal : IDisposable
{
    int _signal; // 0: none; else the PosixSignal value (negative, platform-independent)
    readonly List<PosixSignalRegistration> _registrations = new();

    public bool Requested => Volatile.Read(ref _signal) != 0;
    public PosixSignal? Signal => Volatile.Read(ref _signal) is int s and not 0 ? (PosixSignal)s : null;

    /// <summary>Asks for a stop; returns false when one was already asked for (the first signal is the one reported).</summary>
    public bool Request(PosixSignal signal) => Interlocked.CompareExchange(ref _signal, (int)signal, 0) == 0;

    /// <summary>Exit status of a process stopped by <paramref name="signal"/>, as a shell reports it: 128 + the signal number (130, 143).</summary>
    public static int ExitCodeFor(PosixSignal signal) => 128 + signal switch
    {
        PosixSignal.SIGHUP => 1,
        PosixSignal.SIGINT => 2,
        PosixSignal.SIGQUIT => 3,
        PosixSignal.SIGTERM => 15,
        _ => throw new ArgumentOutOfRangeException(nameof(signal), signal, "not a stop signal"),
    };

    /// <summary>Listens for SIGINT and SIGTERM until disposed.</summary>
    /// <param name="notice">told what is happening when a signal arrives (from the signal's thread)</param>
    /// <param name="outputDir">the run folder, named in the second signal's message</param>
    public static StopSignal ListenToProcess(Action<string> notice, string outputDir)
    {
        var stop = new StopSignal();
        foreach (var signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM })
        {
            stop._registrations.Add(PosixSignalRegistration.Create(signal, context =>
            {
                context.Cancel = true; // the trainer stops the run itself
                if (stop.Request(context.Signal))
                {
                    notice($"{context.Signal}: stopping after this optimizer step and writing a checkpoint (send it again to exit at once)");
                    return;
                }
                notice($"{context.Signal} again: exiting at once; the newest complete checkpoint in {outputDir} is intact (resume with --resume {outputDir})");
                ExitNow(ExitCodeFor(context.Signal));
            }));
        }
        return stop;
    }

    /// <summary>
    /// Ends the process without running exit handlers or native destructors: the main thread may be inside libtorch,
    /// and tearing the library down under it could crash or hang instead of exiting.
    /// </summary>
    static void ExitNow(int code)
    {
        try { _exit(code); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { Environment.Exit(code); }
    }

    [DllImport("libc", EntryPoint = "_exit")]
    static extern void _exit(int status);

    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose();
        _registrations.Clear();
    }
}

/// <summary>A run stopped by a signal after writing a checkpoint; the CLI exits with <see cref="StopSignal.ExitCodeFor"/>.</summary>
public sealed class TrainingStoppedException : EngineException
{
    public PosixSignal Signal { get; }
    public int Step { get; }
    /// <summary>The checkpoint to resume from; null when no step had been completed and none existed.</summary>
    public string? Checkpoint { get; }

    /// <param name="overwriting">the run was started with --overwrite-output-dir, which --resume replaces</param>
    public TrainingStoppedException(PosixSignal signal, int step, string? checkpoint, string outputDir, bool overwriting)
        : base(checkpoint is null
            ? $"stopped by {signal} before any step; nothing to resume (run the same command again)"
            : $"stopped by {signal} after step {step}; checkpoint: {checkpoint}\nto continue, run the same command with --resume {outputDir}" +
              (overwriting ? " in place of --overwrite-output-dir" : ""))
    {
        Signal = signal;
        Step = step;
        Checkpoint = checkpoint;
    }
}
