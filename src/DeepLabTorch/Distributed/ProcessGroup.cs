using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Distributed;

/// <summary>
/// The processes of one training job and the collectives between them: in-place sums and broadcasts
/// of tensors and small host arrays, a barrier, and an abort that ends the whole job. A single process
/// (<see cref="Single"/>) makes every collective a no-op, so the trainer has one code path.
/// Collectives are called by every rank in the same order; a rank that calls one the others do not
/// waits for ever, which is why the trainer agrees on every stop decision through them.
/// </summary>
internal abstract class ProcessGroup : IDisposable
{
    /// <summary>One process: rank 0 of 1, every collective does nothing.</summary>
    public static ProcessGroup Single { get; } = new SingleProcess();

    public abstract int Rank { get; }
    public abstract int Size { get; }
    /// <summary>This process's rank among those on its own machine (which GPU it takes).</summary>
    public abstract int LocalRank { get; }
    /// <summary>How many of the job's processes run on this machine (how the cores are shared).</summary>
    public abstract int LocalSize { get; }
    public bool IsRoot => Rank == 0;
    public bool IsDistributed => Size > 1;
    /// <summary>One line for the log: the library and the layout ("Open MPI v4.1.4: rank 0 of 2, 2 on this machine").</summary>
    public abstract string Description { get; }

    /// <summary>Sums a float32, float64 or int64 tensor over all ranks, in place. CPU tensors go through MPI, CUDA tensors through NCCL.</summary>
    public abstract void AllReduceSum(Tensor t);
    public abstract void AllReduceSum(Span<double> values);
    public abstract void AllReduceSum(Span<long> values);
    /// <summary>Overwrites t on every rank with root's t (any dtype).</summary>
    public abstract void Broadcast(Tensor t, int root = 0);
    public abstract void Broadcast(Span<byte> bytes, int root = 0);
    public abstract void Barrier();
    /// <summary>Ends every process of the job with this exit code (MPI_Abort). Does not return when distributed.</summary>
    public abstract void Abort(int exitCode);

    /// <summary>
    /// Sets up the GPU collectives for CUDA tensors on this device (NCCL); throws a UserException that
    /// says what is missing when NCCL cannot be used.
    /// </summary>
    public virtual void UseCuda(int deviceIndex) { }

    /// <summary>Runs f on rank 0, then on the others: for work that writes shared files (generating a data set, a cache) before others read them.</summary>
    public T RootFirst<T>(Func<T> f)
    {
        if (!IsDistributed) return f();
        if (IsRoot)
        {
            var r = f();
            Barrier();
            return r;
        }
        Barrier();
        return f();
    }

    public virtual void Dispose() => GC.SuppressFinalize(this);

    private sealed class SingleProcess : ProcessGroup
    {
        public override int Rank => 0;
        public override int Size => 1;
        public override int LocalRank => 0;
        public override int LocalSize => 1;
        public override string Description => "one process";
        public override void AllReduceSum(Tensor t) { }
        public override void AllReduceSum(Span<double> values) { }
        public override void AllReduceSum(Span<long> values) { }
        public override void Broadcast(Tensor t, int root = 0) { }
        public override void Broadcast(Span<byte> bytes, int root = 0) { }
        public override void Barrier() { }
        public override void Abort(int exitCode) { }
        public override void Dispose() { }
    }
}

/// <summary>
/// The processes an MPI launcher (mpirun, or Slurm's srun with PMIx) started: Open MPI for CPU tensors
/// and host values, NCCL for CUDA tensors once <see cref="UseCuda"/> has made its communicator.
/// </summary>
internal sealed class MpiProcessGroup : ProcessGroup
{
    [DllImport("LibTorchSharp")]
    private static extern IntPtr THSTensor_data(IntPtr handle);

    private IntPtr _nccl;
    private bool _disposed;

    private MpiProcessGroup(int rank, int size, int localRank, int localSize, string library)
    {
        Rank = rank;
        Size = size;
        LocalRank = localRank;
        LocalSize = localSize;
        Library = library;
    }

    public override int Rank { get; }
    public override int Size { get; }
    public override int LocalRank { get; }
    public override int LocalSize { get; }
    public string Library { get; }
    public override string Description => $"{Library}{(_nccl != IntPtr.Zero ? $" + NCCL {Nccl.Version()}" : "")}: rank {Rank} of {Size}, {LocalSize} on this machine";

    /// <summary>MPI_Init (once per process) and the world's layout. Throws MpiMissingException naming the install command when Open MPI is absent.</summary>
    public static MpiProcessGroup Initialize()
    {
        if (!OpenMpi.Initialized) OpenMpi.Init();
        var world = OpenMpi.CommWorld;
        var (localRank, localSize) = OpenMpi.LocalRankAndSize();
        return new MpiProcessGroup(OpenMpi.Rank(world), OpenMpi.Size(world), localRank, localSize, OpenMpi.LibraryVersion());
    }

    private static (IntPtr Type, int Nccl) TypeOf(Tensor t) => t.dtype switch
    {
        ScalarType.Float32 => (OpenMpi.Float, Nccl.Float32),
        ScalarType.Float64 => (OpenMpi.Double, Nccl.Float64),
        ScalarType.Int64 => (OpenMpi.Int64, Nccl.Int64),
        _ => throw new ArgumentException($"all-reduce supports float32, float64 and int64 tensors, not {t.dtype}"),
    };

    private static IntPtr Data(Tensor t)
    {
        var p = THSTensor_data(t.Handle);
        if (p == IntPtr.Zero && t.numel() > 0) throw new InvalidOperationException("libtorch returned no data pointer");
        return p;
    }

    public override void AllReduceSum(Tensor t)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var (type, ncclType) = TypeOf(t);
        if (!t.is_contiguous())
        {
            // A strided view (channels-last weights, a slice): sum a packed copy and write it back.
            using var packed = t.contiguous();
            AllReduceSum(packed);
            using (no_grad()) t.copy_(packed);
            return;
        }
        if (t.numel() == 0) return;
        if (t.device_type == DeviceType.CUDA)
        {
            if (_nccl == IntPtr.Zero) throw new InvalidOperationException("a CUDA tensor reached the all-reduce before UseCuda set up NCCL");
            Nccl.AllReduceSumInPlace(_nccl, Data(t), t.numel(), ncclType);
            return;
        }
        if (t.device_type != DeviceType.CPU) throw new ArgumentException($"all-reduce of a tensor on {t.device} is not supported");
        OpenMpi.AllReduceSumInPlace(Data(t), t.numel(), type, (int)t.ElementSize);
    }

    public override unsafe void AllReduceSum(Span<double> values)
    {
        fixed (double* p = values) OpenMpi.AllReduceSumInPlace((IntPtr)p, values.Length, OpenMpi.Double, sizeof(double));
    }

    public override unsafe void AllReduceSum(Span<long> values)
    {
        fixed (long* p = values) OpenMpi.AllReduceSumInPlace((IntPtr)p, values.Length, OpenMpi.Int64, sizeof(long));
    }

    public override void Broadcast(Tensor t, int root = 0)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!t.is_contiguous())
        {
            using var packed = t.contiguous();
            Broadcast(packed, root);
            using (no_grad()) t.copy_(packed);
            return;
        }
        if (t.numel() == 0) return;
        var bytes = t.numel() * t.ElementSize;
        if (t.device_type == DeviceType.CUDA)
        {
            if (_nccl == IntPtr.Zero) throw new InvalidOperationException("a CUDA tensor reached the broadcast before UseCuda set up NCCL");
            // As bytes (ncclUint8 = 1): any dtype.
            Nccl.BroadcastInPlace(_nccl, Data(t), bytes, 1, root);
            return;
        }
        if (t.device_type != DeviceType.CPU) throw new ArgumentException($"broadcast of a tensor on {t.device} is not supported");
        OpenMpi.Broadcast(Data(t), bytes, OpenMpi.Byte, 1, root);
    }

    public override unsafe void Broadcast(Span<byte> bytes, int root = 0)
    {
        fixed (byte* p = bytes) OpenMpi.Broadcast((IntPtr)p, bytes.Length, OpenMpi.Byte, 1, root);
    }

    public override void Barrier() => OpenMpi.Barrier();

    public override void Abort(int exitCode) => OpenMpi.Abort(exitCode);

    public override unsafe void UseCuda(int deviceIndex)
    {
        if (_nccl != IntPtr.Zero) return;
        // Every rank learns whether NCCL loads everywhere before any of them waits in ncclCommInitRank.
        var why = Nccl.Unavailable();
        Span<long> missing = stackalloc long[] { why is null ? 0 : 1 };
        AllReduceSum(missing);
        if (why is not null) throw new UserException($"--device cuda on {Size} processes needs NCCL for the GPU all-reduce: {why}");
        if (missing[0] > 0) throw new UserException($"--device cuda on {Size} processes needs NCCL, and {missing[0]} of the processes could not load it");
        var id = IsRoot ? Nccl.NewUniqueId() : default;
        Broadcast(new Span<byte>(id.Bytes, Nccl.UniqueIdBytes), 0);
        _nccl = Nccl.InitRank(id, Size, Rank, deviceIndex);
    }

    /// <summary>Frees NCCL's communicator and calls MPI_Finalize (every rank must get here).</summary>
    public override void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Nccl.Destroy(_nccl);
        _nccl = IntPtr.Zero;
        OpenMpi.FinalizeMpi();
        GC.SuppressFinalize(this);
    }
}
