using System.Runtime.InteropServices;
using DeepLabTorch.Torch.Native;
using static DeepLabTorch.Torch.Native.NativeMethods;

namespace DeepLabTorch.Torch;

/// <summary>The entry point, shaped like TorchSharp's `torch` class: `using static DeepLabTorch.Torch.torch;`.</summary>
public static unsafe partial class torch
{
    public static readonly Device CPU = new(DeviceType.CPU);
    public static Device CUDA => new(DeviceType.CUDA, 0);
    public static Device device(string name) => Device.Parse(name);

    public const ScalarType float32 = ScalarType.Float32;
    public const ScalarType float16 = ScalarType.Float16;
    public const ScalarType bfloat16 = ScalarType.BFloat16;
    public const ScalarType float64 = ScalarType.Float64;
    public const ScalarType int64 = ScalarType.Int64;
    public const ScalarType int32 = ScalarType.Int32;
    public const ScalarType uint8 = ScalarType.Byte;
    public const ScalarType @bool = ScalarType.Bool;

    private static bool _threadsSet;

    static torch() => EnsureThreads();

    /// <summary>
    /// Debian's libtorch starts with one intra-op thread; default to the machine's cores
    /// (or $DEEPLABTORCH_THREADS) the first time the binding is used.
    /// </summary>
    internal static void EnsureThreads()
    {
        if (_threadsSet) return;
        _threadsSet = true;
        var env = Environment.GetEnvironmentVariable("DEEPLABTORCH_THREADS");
        int n = int.TryParse(env, out var v) && v > 0 ? v : Environment.ProcessorCount;
        dlt_set_num_threads(n);
    }

    // ---------------------------------------------------------------- factories
    private static Tensor Factory(int kind, ReadOnlySpan<long> size, ScalarType? dtype, Device? dev, bool requires_grad, double value = 0)
    {
        dev ??= CPU;
        fixed (long* p = size)
            return Tensor.From(dlt_tensor_factory(kind, p, size.Length, (int)(dtype ?? ScalarType.Float32), (int)dev.type, dev.index,
                (sbyte)(requires_grad ? 1 : 0), value));
    }

    public static Tensor empty(long[] size, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => Factory(0, size, dtype, device, requires_grad);
    public static Tensor zeros(long[] size, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => Factory(1, size, dtype, device, requires_grad);
    public static Tensor ones(long[] size, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => Factory(2, size, dtype, device, requires_grad);
    public static Tensor full(long[] size, double value, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => Factory(3, size, dtype, device, requires_grad, value);
    public static Tensor rand(long[] size, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => Factory(4, size, dtype, device, requires_grad);
    public static Tensor randn(long[] size, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => Factory(5, size, dtype, device, requires_grad);
    public static Tensor zeros(params long[] size) => zeros(size, null);
    public static Tensor ones(params long[] size) => ones(size, null);
    public static Tensor randn(params long[] size) => randn(size, null);
    public static Tensor rand(params long[] size) => rand(size, null);
    public static Tensor zeros_like(Tensor t) => zeros(t.shape, t.dtype, t.device);
    public static Tensor ones_like(Tensor t) => ones(t.shape, t.dtype, t.device);

    public static Tensor randint(long low, long high, long[] size, ScalarType? dtype = null, Device? device = null)
    {
        device ??= CPU;
        fixed (long* p = size)
            return Tensor.From(dlt_tensor_randint(low, high, p, size.Length, (int)(dtype ?? ScalarType.Int64), (int)device.type, device.index));
    }

    public static Tensor arange(double start, double end, double step = 1, ScalarType? dtype = null, Device? device = null)
    {
        device ??= CPU;
        return Tensor.From(dlt_tensor_arange(start, end, step, (int)(dtype ?? ScalarType.Int64), (int)device.type, device.index));
    }
    public static Tensor arange(long end, ScalarType? dtype = null) => arange(0, end, 1, dtype);

    /// <summary>A CPU tensor holding a copy of the values, in the given shape (default: 1-D).</summary>
    public static Tensor tensor<T>(ReadOnlySpan<T> values, long[]? shape = null, bool requires_grad = false) where T : unmanaged
    {
        shape ??= new long[] { values.Length };
        long n = 1;
        foreach (var s in shape) n *= s;
        if (n != values.Length) throw new ArgumentException($"{values.Length} values do not fill shape [{string.Join(",", shape)}]");
        var dt = ScalarTypeExtensions.Of<T>();
        Tensor t;
        fixed (T* d = values)
        fixed (long* p = shape)
            t = Tensor.From(dlt_tensor_from_data(d, (long)values.Length * sizeof(T), p, shape.Length, (int)dt));
        if (requires_grad) t.requires_grad = true;
        return t;
    }
    public static Tensor tensor<T>(T[] values, long[]? shape = null, bool requires_grad = false) where T : unmanaged =>
        tensor((ReadOnlySpan<T>)values, shape, requires_grad);
    public static Tensor tensor(double scalar, ScalarType dtype = ScalarType.Float32)
    {
        using var t = tensor(new[] { scalar }, Array.Empty<long>());
        return t.to(dtype);
    }

    /// <summary>
    /// A CPU tensor over a C# array without copying: the array is pinned until libtorch frees the tensor.
    /// </summary>
    public static Tensor from_array<T>(T[] values, long[] shape) where T : unmanaged
    {
        long n = 1;
        foreach (var s in shape) n *= s;
        if (n != values.Length) throw new ArgumentException($"{values.Length} values do not fill shape [{string.Join(",", shape)}]");
        var pin = GCHandle.Alloc(values, GCHandleType.Pinned);
        try
        {
            fixed (long* p = shape)
                return Tensor.From(dlt_tensor_from_blob((void*)pin.AddrOfPinnedObject(), p, shape.Length, (int)ScalarTypeExtensions.Of<T>(),
                    (IntPtr)(delegate* unmanaged<IntPtr, void>)&Unpin, GCHandle.ToIntPtr(pin)));
        }
        catch
        {
            pin.Free();
            throw;
        }
    }

    [UnmanagedCallersOnly]
    private static void Unpin(IntPtr ctx) => GCHandle.FromIntPtr(ctx).Free();

    // ---------------------------------------------------------------- combining
    private delegate IntPtr ListCall(IntPtr* hs, int n, long dim);
    private static Tensor List(ListCall f, IReadOnlyList<Tensor> ts, long dim)
    {
        var hs = new IntPtr[ts.Count];
        for (int i = 0; i < hs.Length; i++) hs[i] = ts[i].Handle;
        fixed (IntPtr* p = hs) return Tensor.From(f(p, hs.Length, dim));
    }
    public static Tensor cat(IReadOnlyList<Tensor> tensors, long dim = 0) => List(dlt_tensor_cat, tensors, dim);
    public static Tensor stack(IReadOnlyList<Tensor> tensors, long dim = 0) => List(dlt_tensor_stack, tensors, dim);
    public static Tensor where(Tensor condition, Tensor a, Tensor b) => Tensor.From(dlt_tensor_where(condition.Handle, a.Handle, b.Handle));
    public static Tensor one_hot(Tensor t, long num_classes) => Tensor.From(dlt_tensor_one_hot(t.Handle, num_classes));
    public static Tensor maximum(Tensor a, Tensor b) => a.maximum(b);
    public static Tensor minimum(Tensor a, Tensor b) => a.minimum(b);

    // ---------------------------------------------------------------- memory and autograd scopes
    /// <summary>Opens a dispose scope on this thread: every tensor created until it closes is freed with it.</summary>
    public static DisposeScope NewDisposeScope() => new();

    private sealed class GradModeScope : IDisposable
    {
        private readonly bool _previous;
        private bool _done;
        public GradModeScope(bool enabled)
        {
            _previous = dlt_grad_enabled() == 1;
            dlt_set_grad_enabled((sbyte)(enabled ? 1 : 0));
        }
        public void Dispose()
        {
            if (_done) return;
            _done = true;
            dlt_set_grad_enabled((sbyte)(_previous ? 1 : 0));
        }
    }

    /// <summary>Disables gradient recording on this thread until disposed.</summary>
    public static IDisposable no_grad() => new GradModeScope(false);
    public static IDisposable enable_grad() => new GradModeScope(true);
    public static bool is_grad_enabled() => dlt_grad_enabled() == 1;

    private sealed class InferenceScope : IDisposable
    {
        private IntPtr _guard;
        public InferenceScope() => _guard = Errors.Check(dlt_inference_mode_enter());
        public void Dispose()
        {
            var g = Interlocked.Exchange(ref _guard, IntPtr.Zero);
            if (g != IntPtr.Zero) dlt_inference_mode_exit(g);
        }
    }

    /// <summary>c10::InferenceMode on this thread until disposed (scopes must close in reverse order).</summary>
    public static IDisposable inference_mode() => new InferenceScope();

    // ---------------------------------------------------------------- runtime
    public static void manual_seed(long seed) { dlt_manual_seed(unchecked((ulong)seed)); Errors.Check(); }
    public static void set_num_threads(int n)
    {
        if (n < 1) throw new ArgumentOutOfRangeException(nameof(n), n, "thread count must be at least 1");
        _threadsSet = true;
        dlt_set_num_threads(n);
        Errors.Check();
    }
    public static int get_num_threads() => dlt_get_num_threads();
    public static string __version__ => ReadString((b, c) => dlt_version(b, c));
    public static string build_info() => ReadString((b, c) => dlt_build_info(b, c));
    public static string parallel_info() => ReadString((b, c) => dlt_parallel_info(b, c));

    /// <summary>The default CPU generator's state (uint8 tensor), for exact resume.</summary>
    public static Tensor get_rng_state() => Tensor.From(dlt_rng_get_state());
    public static void set_rng_state(Tensor state) { dlt_rng_set_state(state.Handle); Errors.Check(); }

    public static class cuda
    {
        public static bool is_available() => dlt_cuda_is_available() == 1;
        public static int device_count() => dlt_cuda_device_count();
        public static void synchronize(int device = 0) { dlt_cuda_synchronize(device); Errors.Check(); }
    }

    public static class backends
    {
        public static class cudnn
        {
            public static bool benchmark { set { dlt_set_cudnn_benchmark((sbyte)(value ? 1 : 0)); Errors.Check(); } }
        }
        public static void use_deterministic_algorithms(bool on) { dlt_set_deterministic((sbyte)(on ? 1 : 0)); Errors.Check(); }
    }
}
