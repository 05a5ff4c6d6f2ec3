using System.Runtime.InteropServices;

namespace DeepLabTorch.Distributed;

/// <summary>
/// NCCL's C API for all-reduce and broadcast on CUDA tensors, bound at run time to libnccl.so.2.
/// The communicator is made the documented way: rank 0 calls ncclGetUniqueId, MPI broadcasts the
/// 128-byte id, every rank calls ncclCommInitRank with the GPU it owns current (cudaSetDevice from
/// the CUDA runtime that libtorch's CUDA build ships). Collectives run on the legacy default stream
/// (stream 0), the stream libtorch's kernels use unless a program picks another, so they are ordered
/// after the kernels that made the gradients and before the optimizer's.
/// Nothing here runs on a machine without a GPU; its tests skip visibly there.
/// </summary>
internal static unsafe class Nccl
{
    public const string InstallHint = "install NCCL 2 (libnccl2 from NVIDIA's CUDA repository, or the nvidia-nccl wheel's libnccl.so.2 on LD_LIBRARY_PATH)";
    public const int UniqueIdBytes = 128;           // NCCL_UNIQUE_ID_BYTES
    public const int Int64 = 4, Float32 = 7, Float64 = 8; // ncclDataType_t
    private const int OpSum = 0;                    // ncclSum

    [StructLayout(LayoutKind.Sequential)]
    public struct UniqueId
    {
        public fixed byte Bytes[UniqueIdBytes];
    }

    private static readonly object Gate = new();
    private static IntPtr _lib;
    private static delegate* unmanaged<int*, int> _getVersion;
    private static delegate* unmanaged<UniqueId*, int> _getUniqueId;
    private static delegate* unmanaged<IntPtr*, int, UniqueId, int, int> _commInitRank;
    private static delegate* unmanaged<IntPtr, int> _commDestroy;
    private static delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> _allReduce;
    private static delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> _broadcast;
    private static delegate* unmanaged<int, IntPtr> _getErrorString;
    private static delegate* unmanaged<int, int> _cudaSetDevice;

    /// <summary>Why NCCL cannot be used here, or null when it can (libnccl and the CUDA runtime both load).</summary>
    public static string? Unavailable()
    {
        lock (Gate)
        {
            if (_lib != IntPtr.Zero) return null;
            if (Runtime.PlatformNatives.LoadNccl(InstallHint, out var lib, out var cudart) is { } problem) return problem;
            try
            {
                _getVersion = (delegate* unmanaged<int*, int>)NativeLibrary.GetExport(lib, "ncclGetVersion");
                _getUniqueId = (delegate* unmanaged<UniqueId*, int>)NativeLibrary.GetExport(lib, "ncclGetUniqueId");
                _commInitRank = (delegate* unmanaged<IntPtr*, int, UniqueId, int, int>)NativeLibrary.GetExport(lib, "ncclCommInitRank");
                _commDestroy = (delegate* unmanaged<IntPtr, int>)NativeLibrary.GetExport(lib, "ncclCommDestroy");
                _allReduce = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)NativeLibrary.GetExport(lib, "ncclAllReduce");
                _broadcast = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)NativeLibrary.GetExport(lib, "ncclBroadcast");
                _getErrorString = (delegate* unmanaged<int, IntPtr>)NativeLibrary.GetExport(lib, "ncclGetErrorString");
                _cudaSetDevice = (delegate* unmanaged<int, int>)NativeLibrary.GetExport(cudart, "cudaSetDevice");
            }
            catch (EntryPointNotFoundException e)
            {
                return $"the NCCL or CUDA runtime library lacks a function ({e.Message}); {InstallHint}";
            }
            _lib = lib;
            return null;
        }
    }

    private static void Check(int rc, string call)
    {
        if (rc == 0) return;
        var text = Marshal.PtrToStringAnsi(_getErrorString(rc)) ?? $"error {rc}";
        throw new InvalidOperationException($"{call} failed: {text}");
    }

    /// <summary>NCCL's version as major.minor.patch.</summary>
    public static string Version()
    {
        int v;
        Check(_getVersion(&v), "ncclGetVersion");
        // From NCCL 2.9 the code is major*10000 + minor*100 + patch; before, major*1000 + minor*100 + patch.
        return v >= 10000 ? $"{v / 10000}.{v / 100 % 100}.{v % 100}" : $"{v / 1000}.{v / 100 % 10}.{v % 100}";
    }

    public static UniqueId NewUniqueId()
    {
        UniqueId id;
        Check(_getUniqueId(&id), "ncclGetUniqueId");
        return id;
    }

    /// <summary>A communicator for this rank on the given GPU (made current first).</summary>
    public static IntPtr InitRank(UniqueId id, int size, int rank, int device)
    {
        var rc = _cudaSetDevice(device);
        if (rc != 0) throw new InvalidOperationException($"cudaSetDevice({device}) failed with CUDA error {rc}");
        IntPtr comm;
        Check(_commInitRank(&comm, size, id, rank), "ncclCommInitRank");
        return comm;
    }

    public static void AllReduceSumInPlace(IntPtr comm, IntPtr buffer, long count, int datatype) =>
        Check(_allReduce(buffer, buffer, (nuint)count, datatype, OpSum, comm, IntPtr.Zero), "ncclAllReduce");

    public static void BroadcastInPlace(IntPtr comm, IntPtr buffer, long count, int datatype, int root) =>
        Check(_broadcast(buffer, buffer, (nuint)count, datatype, root, comm, IntPtr.Zero), "ncclBroadcast");

    public static void Destroy(IntPtr comm)
    {
        if (comm != IntPtr.Zero) _commDestroy(comm);
    }
}
