using System.Runtime.InteropServices;

namespace Engine.Distributed;

/// <summary>
/// The dozen MPI calls Engine makes, bound straight to Open MPI's <c>libmpi.so.40</c> (no compiled shim). Open MPI's
/// handles are the addresses of exported objects (<c>MPI_COMM_WORLD</c> is <c>&amp;ompi_mpi_comm_world</c>), so they
/// are read from the library's symbol table; constants follow Open MPI's mpi.h (4.x). The library is loaded on the
/// first call, i.e. only when a run has more than one rank.
/// </summary>
internal static unsafe class OpenMpi
{
    public const string Library = "libmpi.so.40";
    public const int ThreadSerialized = 2;
    /// <summary>MPI_IN_PLACE in Open MPI's mpi.h.</summary>
    public static readonly void* InPlace = (void*)1;

    [DllImport(Library)] public static extern int MPI_Initialized(out int flag);
    [DllImport(Library)] public static extern int MPI_Init_thread(IntPtr argc, IntPtr argv, int required, out int provided);
    [DllImport(Library)] public static extern int MPI_Finalize();
    [DllImport(Library)] public static extern int MPI_Abort(IntPtr comm, int errorCode);
    [DllImport(Library)] public static extern int MPI_Comm_rank(IntPtr comm, out int rank);
    [DllImport(Library)] public static extern int MPI_Comm_size(IntPtr comm, out int size);
    [DllImport(Library)] public static extern int MPI_Comm_set_errhandler(IntPtr comm, IntPtr handler);
    [DllImport(Library)] public static extern int MPI_Error_string(int code, byte* text, out int length);
    [DllImport(Library)] public static extern int MPI_Get_library_version(byte* text, out int length);
    [DllImport(Library)] public static extern int MPI_Iallreduce(void* send, void* receive, int count, IntPtr type, IntPtr op, IntPtr comm, out IntPtr request);
    [DllImport(Library)] public static extern int MPI_Ibcast(void* buffer, int count, IntPtr type, int root, IntPtr comm, out IntPtr request);
    [DllImport(Library)] public static extern int MPI_Iallgather(void* send, int sendCount, IntPtr sendType, void* receive, int receiveCount,
        IntPtr receiveType, IntPtr comm, out IntPtr request);
    [DllImport(Library)] public static extern int MPI_Iallgatherv(void* send, int sendCount, IntPtr sendType, void* receive, int* receiveCounts,
        int* displacements, IntPtr receiveType, IntPtr comm, out IntPtr request);
    [DllImport(Library)] public static extern int MPI_Ibarrier(IntPtr comm, out IntPtr request);
    [DllImport(Library)] public static extern int MPI_Test(ref IntPtr request, out int flag, IntPtr status);

    /// <summary>The predefined handles, resolved once from the loaded library.</summary>
    public sealed class Handles
    {
        public IntPtr CommWorld { get; }
        public IntPtr Float { get; }
        public IntPtr Double { get; }
        public IntPtr Byte { get; }
        public IntPtr Int { get; }
        public IntPtr Sum { get; }
        public IntPtr ErrorsReturn { get; }

        Handles(IntPtr lib)
        {
            IntPtr Get(string symbol) => NativeLibrary.TryGetExport(lib, symbol, out var address) ? address
                : throw new EngineException($"{Library} has no symbol {symbol}: Engine binds Open MPI 4.x (Debian's openmpi-bin); another MPI needs its own binding");
            CommWorld = Get("ompi_mpi_comm_world");
            Float = Get("ompi_mpi_float");
            Double = Get("ompi_mpi_double");
            Byte = Get("ompi_mpi_byte");
            Int = Get("ompi_mpi_int");
            Sum = Get("ompi_mpi_op_sum");
            ErrorsReturn = Get("ompi_mpi_errors_return");
        }

        public static Handles Load()
        {
            if (!NativeLibrary.TryLoad(Library, out var lib))
                throw new EngineException($"more than one rank needs Open MPI's {Library}, which is not installed (Debian: apt-get install openmpi-bin libopenmpi-dev)");
            return new Handles(lib);
        }
    }

    public static string ErrorText(int code)
    {
        byte* text = stackalloc byte[512];
        return MPI_Error_string(code, text, out int n) == 0 ? System.Text.Encoding.ASCII.GetString(text, n) : $"MPI error {code}";
    }

    public static string LibraryVersion()
    {
        byte* text = stackalloc byte[512];
        if (MPI_Get_library_version(text, out int n) != 0) return "Open MPI";
        var s = System.Text.Encoding.ASCII.GetString(text, n);
        int comma = s.IndexOf(',');
        return (comma > 0 ? s[..comma] : s).Trim();
    }
}
