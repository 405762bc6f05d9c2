using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace Engine.Distributed;

/// <summary>
/// How a process finds out whether it is one rank of an MPI job, and how `--nproc N` starts one on this machine.
/// A process started without a launcher is a single rank and never loads MPI.
/// </summary>
public static class Launch
{
    /// <summary>Set by the local launcher: torch threads for each rank.</summary>
    public const string ThreadsVariable = "ENGINE_THREADS_PER_RANK";

    /// <summary>The job size the launcher announced (Open MPI's mpirun, or a PMI launcher such as Slurm's srun); 1 without one.</summary>
    public static int RanksFromEnvironment()
    {
        foreach (var name in new[] { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE" })
            if (Environment.GetEnvironmentVariable(name) is { } v && int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n > 0)
                return n;
        return 1;
    }

    /// <summary>True inside a job started by mpirun or another MPI launcher (then `--nproc` must not start another).</summary>
    public static bool UnderLauncher => RanksFromEnvironment() > 1;

    /// <summary>The communicator of this process: MPI's world when a launcher started more than one rank, else one process.</summary>
    public static ICommunicator Communicator()
    {
        if (RanksFromEnvironment() <= 1) return SingleProcess.Instance;
        var world = MpiCommunicator.World();
        ConfigureThreads(world);
        return world;
    }

    /// <summary>Torch threads per rank: the launcher's <see cref="ThreadsVariable"/>, else this machine's cores shared by its ranks.</summary>
    public static int ThreadsPerRank()
    {
        if (Environment.GetEnvironmentVariable(ThreadsVariable) is { } v && int.TryParse(v, out int t) && t > 0) return t;
        int local = int.TryParse(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_LOCAL_SIZE"), out int l) && l > 0 ? l : RanksFromEnvironment();
        return Math.Max(1, Environment.ProcessorCount / local);
    }

    static void ConfigureThreads(ICommunicator ranks)
    {
        if (ranks.Size > 1) TorchSharp.torch.set_num_threads(ThreadsPerRank());
    }

    [DllImport("libc", SetLastError = false)] static extern uint geteuid();

    static bool IsRoot => OperatingSystem.IsLinux() && geteuid() == 0;

    /// <summary>
    /// mpirun for <paramref name="ranks"/> local ranks of <paramref name="program"/>: no binding (each rank sets its
    /// own torch threads), oversubscription when there are more ranks than cores, and Open MPI's consent to run as
    /// root when this process is root (containers).
    /// </summary>
    public static ProcessStartInfo LocalMpirun(int ranks, string program, IEnumerable<string> arguments, int? threadsPerRank = null)
    {
        if (ranks < 2) throw new ArgumentException("a local MPI job needs at least 2 ranks");
        string mpirun = FindOnPath("mpirun")
            ?? throw new EngineException($"--nproc {ranks} starts Open MPI's mpirun, which is not installed (Debian: apt-get install openmpi-bin libopenmpi-dev); " +
                "or start the ranks yourself: mpirun -np N ./engine train ...");
        var psi = new ProcessStartInfo(mpirun) { UseShellExecute = false };
        psi.ArgumentList.Add("-np");
        psi.ArgumentList.Add(ranks.ToString(CultureInfo.InvariantCulture));
        psi.ArgumentList.Add("--bind-to");
        psi.ArgumentList.Add("none");
        if (ranks > Environment.ProcessorCount) psi.ArgumentList.Add("--oversubscribe");
        if (IsRoot) psi.ArgumentList.Add("--allow-run-as-root");
        int threads = threadsPerRank ?? Math.Max(1, Environment.ProcessorCount / ranks);
        psi.Environment[ThreadsVariable] = threads.ToString(CultureInfo.InvariantCulture);
        // Open MPI gives local ranks a pseudo-terminal for stdout; as a terminal without capabilities .NET writes no
        // terminal set-up codes into the relayed output.
        psi.Environment["TERM"] = "dumb";
        foreach (var name in new[] { ThreadsVariable, "TERM" })
        {
            psi.ArgumentList.Add("-x");
            psi.ArgumentList.Add(name);
        }
        psi.ArgumentList.Add(program);
        foreach (var a in arguments) psi.ArgumentList.Add(a);
        return psi;
    }

    static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
}
