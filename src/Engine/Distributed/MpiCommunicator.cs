using System.Diagnostics;
using System.Globalization;
using static TorchSharp.torch;

namespace Engine.Distributed;

/// <summary>
/// MPI_COMM_WORLD of an Open MPI job. Every collective is started non-blocking and then polled, so that a wait can
/// notice a peer on the same host that died (its /proc entry gone or a zombie) and stop with a clear
/// <see cref="RankLostException"/> instead of hanging; peers on other hosts are watched by the launcher (mpirun
/// aborts the whole job when any rank dies). Calls come from one thread at a time (MPI_THREAD_SERIALIZED).
/// </summary>
public sealed unsafe class MpiCommunicator : ICommunicator
{
    static readonly object Gate = new();
    static MpiCommunicator? _world;

    readonly OpenMpi.Handles _h;
    readonly (int Rank, int Pid)[] _localPeers;
    readonly string _version;
    bool _failed, _finalized;

    public int Rank { get; }
    public int Size { get; }
    public string Description => $"{Size} ranks ({_version})";
    /// <summary>How often a wait checks that the peers on this host are alive.</summary>
    public static TimeSpan PeerCheckInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>The job's world communicator (MPI is initialised once per process).</summary>
    public static MpiCommunicator World()
    {
        lock (Gate) return _world ??= new MpiCommunicator();
    }

    MpiCommunicator()
    {
        _h = OpenMpi.Handles.Load();
        Check(OpenMpi.MPI_Initialized(out int initialized), "MPI_Initialized");
        if (initialized == 0)
        {
            Check(OpenMpi.MPI_Init_thread(IntPtr.Zero, IntPtr.Zero, OpenMpi.ThreadSerialized, out int provided), "MPI_Init_thread");
            if (provided < OpenMpi.ThreadSerialized)
                throw new EngineException($"Open MPI provides thread level {provided}; Engine needs MPI_THREAD_SERIALIZED ({OpenMpi.ThreadSerialized})");
        }
        // Errors come back as return codes (turned into exceptions here) instead of killing the process mid-write.
        Check(OpenMpi.MPI_Comm_set_errhandler(_h.CommWorld, _h.ErrorsReturn), "MPI_Comm_set_errhandler");
        Check(OpenMpi.MPI_Comm_rank(_h.CommWorld, out int rank), "MPI_Comm_rank");
        Check(OpenMpi.MPI_Comm_size(_h.CommWorld, out int size), "MPI_Comm_size");
        Rank = rank;
        Size = size;
        _version = OpenMpi.LibraryVersion();
        _localPeers = Array.Empty<(int, int)>();
        string host = Environment.MachineName;
        var all = this.AllGather($"{host}\n{Environment.ProcessId}");
        _localPeers = all.Select((s, r) => (Parts: s.Split('\n'), Rank: r))
            .Where(p => p.Rank != Rank && p.Parts[0] == host)
            .Select(p => (p.Rank, int.Parse(p.Parts[1], CultureInfo.InvariantCulture)))
            .ToArray();
    }

    void Check(int code, string what)
    {
        if (code == 0) return;
        _failed = true;
        throw new RankLostException($"{what} failed on rank {Rank}: {OpenMpi.ErrorText(code)} (did another rank stop?)");
    }

    /// <summary>Polls <paramref name="request"/> to completion, checking the local peers while it waits.</summary>
    void Wait(ref IntPtr request, string what)
    {
        long nextCheck = Stopwatch.GetTimestamp() + (long)(PeerCheckInterval.TotalSeconds * Stopwatch.Frequency);
        for (int polls = 0; ; polls++)
        {
            Check(OpenMpi.MPI_Test(ref request, out int done, IntPtr.Zero), what);
            if (done != 0) return;
            if (polls > 64) Thread.Yield(); // let a rank sharing this core compute
            if (Stopwatch.GetTimestamp() >= nextCheck)
            {
                CheckPeers(what);
                nextCheck = Stopwatch.GetTimestamp() + (long)(PeerCheckInterval.TotalSeconds * Stopwatch.Frequency);
            }
        }
    }

    void CheckPeers(string what)
    {
        foreach (var (rank, pid) in _localPeers)
        {
            if (Alive(pid)) continue;
            _failed = true;
            throw new RankLostException($"rank {rank} (pid {pid}) stopped while rank {Rank} waited for it in {what}: it died or was killed. " +
                "A data-parallel run cannot continue without one of its ranks; the newest complete checkpoint can be resumed with any number of ranks.");
        }
    }

    /// <summary>A process that exists and is not a zombie (Linux /proc; elsewhere assumed alive).</summary>
    static bool Alive(int pid)
    {
        if (!OperatingSystem.IsLinux()) return true;
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            int close = stat.LastIndexOf(')');
            char state = close >= 0 && close + 2 < stat.Length ? stat[close + 2] : '?';
            return state is not ('Z' or 'X' or 'x');
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return true; }
    }

    public void AllReduceSum(Span<double> values)
    {
        if (values.IsEmpty) return;
        fixed (double* p = values)
        {
            Check(OpenMpi.MPI_Iallreduce(OpenMpi.InPlace, p, values.Length, _h.Double, _h.Sum, _h.CommWorld, out var request), "MPI_Iallreduce");
            Wait(ref request, "an all-reduce of metrics");
        }
    }

    public IPendingReduction StartAllReduceSum(Tensor buffer)
    {
        if (buffer.dtype != ScalarType.Float32 || buffer.device_type != DeviceType.CPU || !buffer.is_contiguous())
            throw new ArgumentException("the all-reduce buffer must be a contiguous CPU fp32 tensor");
        if (buffer.numel() > int.MaxValue) throw new ArgumentException("an all-reduce buffer holds at most 2^31 − 1 elements (use smaller buckets)");
        var p = (void*)Util.TensorMemory.DataPointer(buffer);
        Check(OpenMpi.MPI_Iallreduce(OpenMpi.InPlace, p, (int)buffer.numel(), _h.Float, _h.Sum, _h.CommWorld, out var request), "MPI_Iallreduce");
        return new Pending(this, request);
    }

    sealed class Pending(MpiCommunicator owner, IntPtr request) : IPendingReduction
    {
        IntPtr _request = request;
        bool _done;

        public bool Poll()
        {
            if (_done) return true;
            owner.Check(OpenMpi.MPI_Test(ref _request, out int flag, IntPtr.Zero), "MPI_Test");
            return _done = flag != 0;
        }

        public void Wait()
        {
            if (_done) return;
            owner.Wait(ref _request, "an all-reduce of gradients");
            _done = true;
        }
    }

    public void Broadcast(Span<byte> data, int root)
    {
        const int chunk = 1 << 30;
        fixed (byte* p = data)
            for (long offset = 0; offset < data.Length; offset += chunk)
            {
                int n = (int)Math.Min(chunk, data.Length - offset);
                Check(OpenMpi.MPI_Ibcast(p + offset, n, _h.Byte, root, _h.CommWorld, out var request), "MPI_Ibcast");
                Wait(ref request, "a broadcast");
            }
    }

    public byte[][] AllGather(ReadOnlySpan<byte> mine)
    {
        var lengths = new int[Size];
        int myLength = mine.Length;
        fixed (int* l = lengths)
        {
            Check(OpenMpi.MPI_Iallgather(&myLength, 1, _h.Int, l, 1, _h.Int, _h.CommWorld, out var request), "MPI_Iallgather");
            Wait(ref request, "an all-gather");
        }
        var displacements = new int[Size];
        long total = 0;
        for (int r = 0; r < Size; r++)
        {
            displacements[r] = (int)total;
            total += lengths[r];
        }
        if (total > int.MaxValue) throw new EngineException($"an all-gather of {total} bytes is over MPI's 2 GiB count limit");
        var all = new byte[Math.Max(1, total)];
        fixed (byte* s = mine)
        fixed (byte* a = all)
        fixed (int* l = lengths)
        fixed (int* d = displacements)
        {
            byte dummy = 0;
            Check(OpenMpi.MPI_Iallgatherv(s == null ? &dummy : s, myLength, _h.Byte, a, l, d, _h.Byte, _h.CommWorld, out var request), "MPI_Iallgatherv");
            Wait(ref request, "an all-gather");
        }
        return lengths.Select((n, r) => all.AsSpan(displacements[r], n).ToArray()).ToArray();
    }

    public void Barrier()
    {
        Check(OpenMpi.MPI_Ibarrier(_h.CommWorld, out var request), "MPI_Ibarrier");
        Wait(ref request, "a barrier");
    }

    /// <summary>This rank is leaving after an error: <see cref="Dispose"/> will not wait in MPI_Finalize for the others.</summary>
    public void Fail() => _failed = true;

    /// <summary>Ends the job on every rank now (after a failure this rank has already reported).</summary>
    public void Abort(int code)
    {
        _failed = true;
        OpenMpi.MPI_Abort(_h.CommWorld, code);
    }

    /// <summary>MPI_Finalize after a clean run; after a failure the process just exits and the launcher ends the job.</summary>
    public void Dispose()
    {
        lock (Gate)
        {
            if (_finalized || _failed) return;
            _finalized = true;
            OpenMpi.MPI_Finalize();
        }
    }
}
