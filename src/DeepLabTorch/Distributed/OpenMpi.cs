using System.Runtime.InteropServices;
using System.Text;

namespace DeepLabTorch.Distributed;

/// <summary>MPI is absent, or it is not Open MPI: the message says what to install.</summary>
internal sealed class MpiMissingException : UserException
{
    public MpiMissingException(string message) : base(message) { }
}

/// <summary>
/// The few calls of MPI's C API that data-parallel training needs, bound at run time to Open MPI's
/// libmpi.so.40 (Debian's libopenmpi3), so that a single-process run needs no MPI at all.
/// Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are the addresses of exported
/// globals (ompi_mpi_comm_world, ...), which is what is read here. MPICH and its derivatives use
/// integer handles and another soname (libmpi.so.12): they are recognised and refused by name.
/// Every call checks its return code; the world communicator keeps MPI's default error handler,
/// which ends the whole job on a communication failure (what we want: no rank hangs).
/// </summary>
internal static unsafe class OpenMpi
{
    public const string InstallHint = "apt-get install openmpi-bin libopenmpi3";
    private const int ThreadSerialized = 2;   // MPI_THREAD_SERIALIZED in Open MPI's mpi.h
    private const int CommTypeShared = 0;     // MPI_COMM_TYPE_SHARED in Open MPI's mpi.h
    private static readonly IntPtr InPlace = 1; // MPI_IN_PLACE is ((void *) 1) in Open MPI

    private static readonly object Gate = new();
    private static IntPtr _lib;

    private static delegate* unmanaged<int*, IntPtr, int, int*, int> _initThread;
    private static delegate* unmanaged<int*, int> _initialized;
    private static delegate* unmanaged<int*, int> _finalized;
    private static delegate* unmanaged<int> _finalize;
    private static delegate* unmanaged<IntPtr, int*, int> _commRank;
    private static delegate* unmanaged<IntPtr, int*, int> _commSize;
    private static delegate* unmanaged<IntPtr, int, int, IntPtr, IntPtr*, int> _commSplitType;
    private static delegate* unmanaged<IntPtr*, int> _commFree;
    private static delegate* unmanaged<IntPtr, IntPtr, int, IntPtr, IntPtr, IntPtr, int> _allreduce;
    private static delegate* unmanaged<IntPtr, int, IntPtr, int, IntPtr, int> _bcast;
    private static delegate* unmanaged<IntPtr, int> _barrier;
    private static delegate* unmanaged<IntPtr, int, int> _abort;
    private static delegate* unmanaged<int, byte*, int*, int> _errorString;
    private static delegate* unmanaged<byte*, int*, int> _libraryVersion;

    public static IntPtr CommWorld { get; private set; }
    public static IntPtr Float { get; private set; }
    public static IntPtr Double { get; private set; }
    public static IntPtr Int64 { get; private set; }
    public static IntPtr Byte { get; private set; }
    public static IntPtr Sum { get; private set; }
    public static IntPtr InfoNull { get; private set; }

    /// <summary>Where the library was found (for messages and `deeplab info`).</summary>
    public static string? LoadedFrom { get; private set; }

    /// <summary>Loads libmpi and binds the calls; throws MpiMissingException with the install command when it cannot.</summary>
    public static void Load()
    {
        lock (Gate)
        {
            if (_lib != IntPtr.Zero) return;
            var lib = Runtime.PlatformNatives.LoadOpenMpi(InstallHint, out var from, out var problem);
            if (lib == IntPtr.Zero) throw new MpiMissingException(problem!);
            if (!NativeLibrary.TryGetExport(lib, "ompi_mpi_comm_world", out var world))
            {
                NativeLibrary.Free(lib);
                throw new MpiMissingException($"{from} is not Open MPI (it exports no ompi_mpi_comm_world); DeepLabTorch binds Open MPI: {InstallHint}");
            }
            _initThread = (delegate* unmanaged<int*, IntPtr, int, int*, int>)Export(lib, "MPI_Init_thread");
            _initialized = (delegate* unmanaged<int*, int>)Export(lib, "MPI_Initialized");
            _finalized = (delegate* unmanaged<int*, int>)Export(lib, "MPI_Finalized");
            _finalize = (delegate* unmanaged<int>)Export(lib, "MPI_Finalize");
            _commRank = (delegate* unmanaged<IntPtr, int*, int>)Export(lib, "MPI_Comm_rank");
            _commSize = (delegate* unmanaged<IntPtr, int*, int>)Export(lib, "MPI_Comm_size");
            _commSplitType = (delegate* unmanaged<IntPtr, int, int, IntPtr, IntPtr*, int>)Export(lib, "MPI_Comm_split_type");
            _commFree = (delegate* unmanaged<IntPtr*, int>)Export(lib, "MPI_Comm_free");
            _allreduce = (delegate* unmanaged<IntPtr, IntPtr, int, IntPtr, IntPtr, IntPtr, int>)Export(lib, "MPI_Allreduce");
            _bcast = (delegate* unmanaged<IntPtr, int, IntPtr, int, IntPtr, int>)Export(lib, "MPI_Bcast");
            _barrier = (delegate* unmanaged<IntPtr, int>)Export(lib, "MPI_Barrier");
            _abort = (delegate* unmanaged<IntPtr, int, int>)Export(lib, "MPI_Abort");
            _errorString = (delegate* unmanaged<int, byte*, int*, int>)Export(lib, "MPI_Error_string");
            _libraryVersion = (delegate* unmanaged<byte*, int*, int>)Export(lib, "MPI_Get_library_version");
            CommWorld = world;
            Float = Export(lib, "ompi_mpi_float");
            Double = Export(lib, "ompi_mpi_double");
            Int64 = Export(lib, "ompi_mpi_int64_t");
            Byte = Export(lib, "ompi_mpi_byte");
            Sum = Export(lib, "ompi_mpi_op_sum");
            InfoNull = Export(lib, "ompi_mpi_info_null");
            LoadedFrom = from;
            _lib = lib;
        }
    }

    /// <summary>Whether Open MPI's library can be loaded here (nothing is initialised).</summary>
    public static bool IsAvailable() => MissingReason() is null;

    /// <summary>Why Open MPI cannot be used here (one line), or null when it loads.</summary>
    public static string? MissingReason()
    {
        try { Load(); return null; }
        catch (MpiMissingException e) { return e.Message; }
    }

    private static IntPtr Export(IntPtr lib, string name) =>
        NativeLibrary.TryGetExport(lib, name, out var p) ? p
            : throw new MpiMissingException($"the MPI library lacks {name}; install Open MPI 4 or later: {InstallHint}");

    private static void Check(int rc, string call)
    {
        if (rc == 0) return;
        var text = new byte[512];
        var len = 0;
        fixed (byte* t = text)
            if (_errorString(rc, t, &len) != 0) len = 0;
        var reason = len > 0 ? Encoding.ASCII.GetString(text, 0, Math.Min(len, text.Length)) : $"error code {rc}";
        throw new InvalidOperationException($"{call} failed: {reason}");
    }

    public static bool Initialized
    {
        get
        {
            Load();
            int flag;
            Check(_initialized(&flag), "MPI_Initialized");
            return flag != 0;
        }
    }

    public static bool Finalized
    {
        get
        {
            Load();
            int flag;
            Check(_finalized(&flag), "MPI_Finalized");
            return flag != 0;
        }
    }

    /// <summary>
    /// MPI_Init_thread asking for MPI_THREAD_SERIALIZED: calls come from the training thread, and on a
    /// GPU also from the autograd engine's thread while the training thread waits in backward.
    /// Returns the level granted.
    /// </summary>
    public static int Init()
    {
        Load();
        int provided;
        Check(_initThread(null, IntPtr.Zero, ThreadSerialized, &provided), "MPI_Init_thread");
        return provided;
    }

    public static void FinalizeMpi()
    {
        if (_lib == IntPtr.Zero || !Initialized || Finalized) return;
        Check(_finalize(), "MPI_Finalize");
    }

    public static int Rank(IntPtr comm)
    {
        int r;
        Check(_commRank(comm, &r), "MPI_Comm_rank");
        return r;
    }

    public static int Size(IntPtr comm)
    {
        int s;
        Check(_commSize(comm, &s), "MPI_Comm_size");
        return s;
    }

    /// <summary>This process's rank and the process count on its own machine (the shared-memory split of the world).</summary>
    public static (int Rank, int Size) LocalRankAndSize()
    {
        IntPtr local;
        Check(_commSplitType(CommWorld, CommTypeShared, 0, InfoNull, &local), "MPI_Comm_split_type");
        try { return (Rank(local), Size(local)); }
        finally { Check(_commFree(&local), "MPI_Comm_free"); }
    }

    /// <summary>In-place sum over all ranks of count elements at buffer, in chunks that fit MPI's int counts.</summary>
    public static void AllReduceSumInPlace(IntPtr buffer, long count, IntPtr datatype, int elementSize)
    {
        for (long done = 0; done < count;)
        {
            var n = (int)Math.Min(count - done, int.MaxValue / 2);
            Check(_allreduce(InPlace, buffer + (nint)(done * elementSize), n, datatype, Sum, CommWorld), "MPI_Allreduce");
            done += n;
        }
    }

    /// <summary>Rank root's count elements at buffer, copied into every other rank's buffer.</summary>
    public static void Broadcast(IntPtr buffer, long count, IntPtr datatype, int elementSize, int root)
    {
        for (long done = 0; done < count;)
        {
            var n = (int)Math.Min(count - done, int.MaxValue / 2);
            Check(_bcast(buffer + (nint)(done * elementSize), n, datatype, root, CommWorld), "MPI_Bcast");
            done += n;
        }
    }

    public static void Barrier() => Check(_barrier(CommWorld), "MPI_Barrier");

    /// <summary>MPI_Abort on the world: Open MPI's launcher ends every rank of the job with this exit code.</summary>
    public static void Abort(int code)
    {
        if (_lib != IntPtr.Zero) _abort(CommWorld, code);
    }

    /// <summary>"Open MPI v4.1.4, ..." (the first line of MPI_Get_library_version).</summary>
    public static string LibraryVersion()
    {
        Load();
        var text = new byte[8192];
        var len = 0;
        fixed (byte* t = text) Check(_libraryVersion(t, &len), "MPI_Get_library_version");
        var s = Encoding.ASCII.GetString(text, 0, Math.Clamp(len, 0, text.Length)).TrimEnd('\0');
        var comma = s.IndexOf(',');
        return (comma > 0 ? s[..comma] : s).Trim();
    }
}
