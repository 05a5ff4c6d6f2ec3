using System.Runtime.InteropServices;
using DeepLabTorch.Torch.Native;
using static DeepLabTorch.Torch.Native.NativeMethods;

namespace DeepLabTorch.Torch;

public static partial class torch
{
    // Operation codes shared with src/Native/tensor.cpp (enum UnaryOp, BinaryOp, ReduceOp).
    internal enum Unary { Neg, Abs, Exp, Log, Sqrt, Rsqrt, Sigmoid, Tanh, Relu, Floor, Ceil, Round, Sign, LogicalNot, Square, Reciprocal, IsNan, IsFinite, Relu6, Zero, Sin, Cos }
    internal enum Binary { Add, Sub, Mul, Div, Pow, Maximum, Minimum, Eq, Ne, Lt, Le, Gt, Ge, LogicalAnd, LogicalOr, Remainder, FloorDivide, MatMul, Atan2 }
    internal enum Reduce { Sum, Mean, AMax, AMin, Prod, All, Any }

    /// <summary>
    /// A tensor owning one native at::Tensor handle. Dispose frees it at once; the finalizer is only a
    /// safety net. Disposing twice is safe; using a disposed tensor throws ObjectDisposedException.
    /// </summary>
    public unsafe class Tensor : IDisposable
    {
        private IntPtr _handle;
        private static long _live;
        internal DisposeScope? Scope;

        /// <summary>Tensors alive right now (created and not yet disposed or finalized).</summary>
        public static long LiveCount => Interlocked.Read(ref _live);

        internal Tensor(IntPtr handle)
        {
            if (handle == IntPtr.Zero) Errors.Throw();
            _handle = handle;
            Interlocked.Increment(ref _live);
            DisposeScope.Current?.Add(this);
        }

        /// <summary>Wraps a handle returned by a native call, throwing the native error if it is null.</summary>
        internal static Tensor From(IntPtr handle) => new(Errors.Check(handle));

        public IntPtr Handle
        {
            get
            {
                var h = _handle;
                if (h == IntPtr.Zero) throw new ObjectDisposedException(nameof(Tensor), "the tensor was disposed");
                return h;
            }
        }

        public bool IsInvalid => _handle == IntPtr.Zero;

        ~Tensor() => Free();

        public void Dispose()
        {
            Scope?.Remove(this);
            Free();
            GC.SuppressFinalize(this);
        }

        private void Free()
        {
            var h = Interlocked.Exchange(ref _handle, IntPtr.Zero);
            if (h == IntPtr.Zero) return;
            dlt_tensor_free(h);
            Interlocked.Decrement(ref _live);
        }

        /// <summary>Moves this tensor from its dispose scope to the next outer one (or none).</summary>
        public Tensor MoveToOuterDisposeScope()
        {
            var scope = Scope;
            if (scope == null) return this;
            var outer = scope.Outer;
            scope.Remove(this);
            outer?.Add(this);
            return this;
        }

        /// <summary>Removes this tensor from every dispose scope: the caller owns it.</summary>
        public Tensor DetachFromDisposeScope()
        {
            Scope?.Remove(this);
            return this;
        }

        // ------------------------------------------------------------ metadata
        public long numel() { var n = dlt_tensor_numel(Handle); if (n < 0) Errors.Throw(); return n; }
        public long NumberOfElements => numel();
        public int dim() { var n = dlt_tensor_dim(Handle); if (n < 0) Errors.Throw(); return n; }
        public int Dimensions => dim();

        public long[] shape
        {
            get
            {
                Span<long> buf = stackalloc long[16];
                int n;
                fixed (long* p = buf) n = dlt_tensor_sizes(Handle, p, 16);
                if (n < 0) Errors.Throw();
                if (n <= 16) return buf[..n].ToArray();
                var big = new long[n];
                fixed (long* p = big) dlt_tensor_sizes(Handle, p, n);
                return big;
            }
        }

        public long size(int d)
        {
            var s = shape;
            return s[d < 0 ? d + s.Length : d];
        }

        public long[] stride()
        {
            var buf = new long[16];
            int n;
            fixed (long* p = buf) n = dlt_tensor_strides(Handle, p, 16);
            if (n < 0) Errors.Throw();
            return buf[..n];
        }

        public ScalarType dtype { get { var d = dlt_tensor_dtype(Handle); if (d < 0) Errors.Throw(); return (ScalarType)d; } }
        public Device device => new((DeviceType)dlt_tensor_device_type(Handle), dlt_tensor_device_index(Handle));
        public bool is_cuda => dlt_tensor_device_type(Handle) == (int)DeviceType.CUDA;
        public bool is_leaf => dlt_tensor_is_leaf(Handle) == 1;
        public bool is_contiguous() => dlt_tensor_is_contiguous(Handle, 0) == 1;
        public bool is_channels_last() => dlt_tensor_is_contiguous(Handle, 1) == 1;
        public long element_size() => dlt_tensor_element_size(Handle);

        public bool requires_grad
        {
            get => dlt_tensor_requires_grad(Handle) == 1;
            set { dlt_tensor_set_requires_grad(Handle, (sbyte)(value ? 1 : 0)); Errors.Check(); }
        }

        public Tensor requires_grad_(bool on = true) { requires_grad = on; return this; }

        /// <summary>Pointer to the first element. Valid while the tensor lives; CPU tensors only for reading.</summary>
        public IntPtr data_ptr() => Errors.Check(dlt_tensor_data_ptr(Handle));

        // ------------------------------------------------------------ data out
        /// <summary>Copies the elements into a new C# array (moves to CPU and makes contiguous first).</summary>
        public T[] ToArray<T>() where T : unmanaged
        {
            var want = ScalarTypeExtensions.Of<T>();
            if (want != dtype) throw new InvalidOperationException($"tensor has dtype {dtype}, asked for {typeof(T).Name}");
            using var cpu = to(new Device(DeviceType.CPU), null);
            using var c = cpu.contiguous();
            var n = c.numel();
            var result = new T[n];
            if (n > 0)
                new ReadOnlySpan<T>((void*)c.data_ptr(), checked((int)n)).CopyTo(result);
            return result;
        }

        /// <summary>Copies the elements into a span of exactly numel() elements.</summary>
        public void CopyTo<T>(Span<T> destination) where T : unmanaged
        {
            var want = ScalarTypeExtensions.Of<T>();
            if (want != dtype) throw new InvalidOperationException($"tensor has dtype {dtype}, asked for {typeof(T).Name}");
            using var cpu = to(new Device(DeviceType.CPU), null);
            using var c = cpu.contiguous();
            var n = checked((int)c.numel());
            if (destination.Length != n) throw new ArgumentException($"destination holds {destination.Length} elements, tensor {n}");
            new ReadOnlySpan<T>((void*)c.data_ptr(), n).CopyTo(destination);
        }

        /// <summary>The span over a contiguous CPU tensor's memory (no copy). Valid while the tensor lives.</summary>
        public Span<T> AsSpan<T>() where T : unmanaged
        {
            if (ScalarTypeExtensions.Of<T>() != dtype) throw new InvalidOperationException($"tensor has dtype {dtype}, asked for {typeof(T).Name}");
            if (is_cuda || !is_contiguous()) throw new InvalidOperationException("AsSpan needs a contiguous CPU tensor");
            return new Span<T>((void*)data_ptr(), checked((int)numel()));
        }

        public T item<T>() where T : unmanaged
        {
            if (typeof(T) == typeof(float)) { var v = (float)ItemDouble(); return *(T*)&v; }
            if (typeof(T) == typeof(double)) { var v = ItemDouble(); return *(T*)&v; }
            if (typeof(T) == typeof(long)) { var v = ItemLong(); return *(T*)&v; }
            if (typeof(T) == typeof(int)) { var v = (int)ItemLong(); return *(T*)&v; }
            if (typeof(T) == typeof(byte)) { var v = (byte)ItemLong(); return *(T*)&v; }
            if (typeof(T) == typeof(bool)) { var v = ItemLong() != 0; return *(T*)&v; }
            throw new NotSupportedException($"item<{typeof(T).Name}>");
        }

        private double ItemDouble() { var v = dlt_tensor_item_double(Handle); Errors.Check(); return v; }
        private long ItemLong() { var v = dlt_tensor_item_long(Handle); Errors.Check(); return v; }

        public override string ToString()
        {
            if (IsInvalid) return "Tensor(disposed)";
            return $"[{string.Join("x", shape)}], type = {dtype}, device = {device}";
        }

        /// <summary>libtorch's printed form, values included.</summary>
        public string ToDetailedString() => ReadString((b, c) => dlt_tensor_to_string(Handle, b, c));

        // ------------------------------------------------------------ conversion
        public Tensor to(Device? device, ScalarType? type = null, bool non_blocking = false, bool copy = false) =>
            From(dlt_tensor_to(Handle, device == null ? -1 : (int)device.type, device?.index ?? -1,
                type == null ? -1 : (int)type.Value, (sbyte)(non_blocking ? 1 : 0), (sbyte)(copy ? 1 : 0)));
        public Tensor to(ScalarType type) => to(null, type);
        public Tensor to(string device) => to(Device.Parse(device));
        public Tensor cpu() => to(new Device(DeviceType.CPU));
        public Tensor cuda(int index = 0) => to(new Device(DeviceType.CUDA, index));
        public Tensor to_type(ScalarType type) => to(null, type);
        public Tensor @float() => to(ScalarType.Float32);
        public Tensor @long() => to(ScalarType.Int64);
        public Tensor @bool() => to(ScalarType.Bool);
        public Tensor contiguous() => From(dlt_tensor_contiguous(Handle, 0));
        /// <summary>NHWC memory layout for a 4-D tensor (torch.channels_last).</summary>
        public Tensor contiguous_channels_last() => From(dlt_tensor_contiguous(Handle, 1));
        public Tensor clone() => From(dlt_tensor_clone(Handle));
        public Tensor detach() => From(dlt_tensor_detach(Handle));
        /// <summary>A second handle to the same tensor (shares storage and autograd identity).</summary>
        public Tensor alias() => From(dlt_tensor_alias(Handle));

        /// <summary>Replaces this tensor's data in place, as `param.data = src` in PyTorch.</summary>
        public void set_data(Tensor src) { dlt_tensor_set_data(Handle, src.Handle); Errors.Check(); }

        // ------------------------------------------------------------ views and shape
        private delegate IntPtr ShapeCall(IntPtr h, long* p, int n);
        private Tensor WithLongs(ShapeCall f, ReadOnlySpan<long> values)
        {
            fixed (long* p = values) return From(f(Handle, p, values.Length));
        }

        public Tensor view(params long[] shape) => WithLongs(dlt_tensor_view, shape);
        public Tensor reshape(params long[] shape) => WithLongs(dlt_tensor_reshape, shape);
        public Tensor permute(params long[] dims) => WithLongs(dlt_tensor_permute, dims);
        public Tensor expand(params long[] shape) => WithLongs(dlt_tensor_expand, shape);
        public Tensor flip(params long[] dims) => WithLongs(dlt_tensor_flip, dims);
        public Tensor transpose(long d0, long d1) => From(dlt_tensor_transpose(Handle, d0, d1));
        public Tensor t() => transpose(0, 1);
        public Tensor squeeze() => From(dlt_tensor_squeeze(Handle, long.MinValue));
        public Tensor squeeze(long dim) => From(dlt_tensor_squeeze(Handle, dim));
        public Tensor unsqueeze(long dim) => From(dlt_tensor_unsqueeze(Handle, dim));
        public Tensor flatten(long start = 0, long end = -1) => From(dlt_tensor_flatten(Handle, start, end));
        public Tensor slice(long dim, long start, long end, long step = 1) => From(dlt_tensor_slice(Handle, dim, start, end, step));
        public Tensor select(long dim, long index) => From(dlt_tensor_select(Handle, dim, index));
        public Tensor narrow(long dim, long start, long length) => From(dlt_tensor_narrow(Handle, dim, start, length));
        public Tensor index_select(long dim, Tensor index) => From(dlt_tensor_index_select(Handle, dim, index.Handle));
        public Tensor gather(long dim, Tensor index) => From(dlt_tensor_gather(Handle, dim, index.Handle));
        public Tensor masked_select(Tensor mask) => From(dlt_tensor_masked_select(Handle, mask.Handle));
        public Tensor masked_fill(Tensor mask, double value) => From(dlt_tensor_masked_fill(Handle, mask.Handle, value, 0));
        public Tensor masked_fill_(Tensor mask, double value) { Release(dlt_tensor_masked_fill(Handle, mask.Handle, value, 1)); return this; }
        public Tensor this[long index] => select(0, index);

        // ------------------------------------------------------------ elementwise
        internal Tensor Un(Unary op) => From(dlt_tensor_unary((int)op, Handle));
        internal Tensor Un_(Unary op) { dlt_tensor_unary_((int)op, Handle); Errors.Check(); return this; }
        internal Tensor Bin(Binary op, Tensor other) => From(dlt_tensor_binary((int)op, Handle, other.Handle));
        internal Tensor Bin(Binary op, double other) => From(dlt_tensor_binary_scalar((int)op, Handle, other));
        internal Tensor Bin_(Binary op, Tensor other) { dlt_tensor_binary_((int)op, Handle, other.Handle); Errors.Check(); return this; }
        internal Tensor Bin_(Binary op, double other) { dlt_tensor_binary_scalar_((int)op, Handle, other); Errors.Check(); return this; }

        public Tensor neg() => Un(Unary.Neg);
        public Tensor abs() => Un(Unary.Abs);
        public Tensor exp() => Un(Unary.Exp);
        public Tensor log() => Un(Unary.Log);
        public Tensor sqrt() => Un(Unary.Sqrt);
        public Tensor rsqrt() => Un(Unary.Rsqrt);
        public Tensor sigmoid() => Un(Unary.Sigmoid);
        public Tensor tanh() => Un(Unary.Tanh);
        public Tensor relu() => Un(Unary.Relu);
        public Tensor floor() => Un(Unary.Floor);
        public Tensor ceil() => Un(Unary.Ceil);
        public Tensor round() => Un(Unary.Round);
        public Tensor sign() => Un(Unary.Sign);
        public Tensor logical_not() => Un(Unary.LogicalNot);
        public Tensor square() => Un(Unary.Square);
        public Tensor reciprocal() => Un(Unary.Reciprocal);
        public Tensor isnan() => Un(Unary.IsNan);
        public Tensor isfinite() => Un(Unary.IsFinite);
        public Tensor sin() => Un(Unary.Sin);
        public Tensor cos() => Un(Unary.Cos);
        public Tensor neg_() => Un_(Unary.Neg);
        public Tensor exp_() => Un_(Unary.Exp);
        public Tensor sqrt_() => Un_(Unary.Sqrt);
        public Tensor relu_() => Un_(Unary.Relu);
        public Tensor sigmoid_() => Un_(Unary.Sigmoid);
        public Tensor zero_() => Un_(Unary.Zero);
        public Tensor fill_(double value) { dlt_tensor_fill_(Handle, value); Errors.Check(); return this; }
        public Tensor copy_(Tensor src) { dlt_tensor_copy_(Handle, src.Handle); Errors.Check(); return this; }

        public Tensor add(Tensor other) => Bin(Binary.Add, other);
        public Tensor add(Tensor other, double alpha) => From(dlt_tensor_add_scaled(Handle, other.Handle, alpha));
        public Tensor add(double other) => Bin(Binary.Add, other);
        public Tensor sub(Tensor other) => Bin(Binary.Sub, other);
        public Tensor sub(double other) => Bin(Binary.Sub, other);
        public Tensor mul(Tensor other) => Bin(Binary.Mul, other);
        public Tensor mul(double other) => Bin(Binary.Mul, other);
        public Tensor div(Tensor other) => Bin(Binary.Div, other);
        public Tensor div(double other) => Bin(Binary.Div, other);
        public Tensor pow(Tensor other) => Bin(Binary.Pow, other);
        public Tensor pow(double other) => Bin(Binary.Pow, other);
        public Tensor remainder(double other) => Bin(Binary.Remainder, other);
        public Tensor floor_divide(double other) => Bin(Binary.FloorDivide, other);
        public Tensor maximum(Tensor other) => Bin(Binary.Maximum, other);
        public Tensor minimum(Tensor other) => Bin(Binary.Minimum, other);
        public Tensor matmul(Tensor other) => Bin(Binary.MatMul, other);
        public Tensor logical_and(Tensor other) => Bin(Binary.LogicalAnd, other);
        public Tensor logical_or(Tensor other) => Bin(Binary.LogicalOr, other);
        public Tensor eq(Tensor other) => Bin(Binary.Eq, other);
        public Tensor eq(double other) => Bin(Binary.Eq, other);
        public Tensor ne(Tensor other) => Bin(Binary.Ne, other);
        public Tensor ne(double other) => Bin(Binary.Ne, other);
        public Tensor lt(Tensor other) => Bin(Binary.Lt, other);
        public Tensor lt(double other) => Bin(Binary.Lt, other);
        public Tensor le(Tensor other) => Bin(Binary.Le, other);
        public Tensor le(double other) => Bin(Binary.Le, other);
        public Tensor gt(Tensor other) => Bin(Binary.Gt, other);
        public Tensor gt(double other) => Bin(Binary.Gt, other);
        public Tensor ge(Tensor other) => Bin(Binary.Ge, other);
        public Tensor ge(double other) => Bin(Binary.Ge, other);

        public Tensor add_(Tensor other) => Bin_(Binary.Add, other);
        public Tensor add_(Tensor other, double alpha) { dlt_tensor_add_scaled_(Handle, other.Handle, alpha); Errors.Check(); return this; }
        public Tensor add_(double other) => Bin_(Binary.Add, other);
        public Tensor sub_(Tensor other) => Bin_(Binary.Sub, other);
        public Tensor sub_(double other) => Bin_(Binary.Sub, other);
        public Tensor mul_(Tensor other) => Bin_(Binary.Mul, other);
        public Tensor mul_(double other) => Bin_(Binary.Mul, other);
        public Tensor div_(Tensor other) => Bin_(Binary.Div, other);
        public Tensor div_(double other) => Bin_(Binary.Div, other);
        public Tensor pow_(double other) => Bin_(Binary.Pow, other);
        public Tensor addcmul_(Tensor a, Tensor b, double value = 1) { dlt_tensor_addcmul_(Handle, a.Handle, b.Handle, value); Errors.Check(); return this; }
        public Tensor addcdiv_(Tensor a, Tensor b, double value = 1) { dlt_tensor_addcdiv_(Handle, a.Handle, b.Handle, value); Errors.Check(); return this; }

        public Tensor clamp(double? min = null, double? max = null) =>
            From(dlt_tensor_clamp(Handle, min ?? 0, max ?? 0, (sbyte)(min.HasValue ? 1 : 0), (sbyte)(max.HasValue ? 1 : 0), 0));
        public Tensor clamp_(double? min = null, double? max = null)
        {
            Release(dlt_tensor_clamp(Handle, min ?? 0, max ?? 0, (sbyte)(min.HasValue ? 1 : 0), (sbyte)(max.HasValue ? 1 : 0), 1));
            return this;
        }
        public Tensor bincount(Tensor? weights = null, long minlength = 0) =>
            From(dlt_tensor_bincount(Handle, weights?.Handle ?? IntPtr.Zero, minlength));
        public Tensor cumsum(long dim) => From(dlt_tensor_cumsum(Handle, dim));

        public static Tensor operator +(Tensor a, Tensor b) => a.add(b);
        public static Tensor operator +(Tensor a, double b) => a.add(b);
        public static Tensor operator +(double a, Tensor b) => b.add(a);
        public static Tensor operator -(Tensor a, Tensor b) => a.sub(b);
        public static Tensor operator -(Tensor a, double b) => a.sub(b);
        public static Tensor operator -(double a, Tensor b) => From(dlt_tensor_scalar_binary((int)Binary.Sub, a, b.Handle));
        public static Tensor operator *(Tensor a, Tensor b) => a.mul(b);
        public static Tensor operator *(Tensor a, double b) => a.mul(b);
        public static Tensor operator *(double a, Tensor b) => b.mul(a);
        public static Tensor operator /(Tensor a, Tensor b) => a.div(b);
        public static Tensor operator /(Tensor a, double b) => a.div(b);
        public static Tensor operator /(double a, Tensor b) => From(dlt_tensor_scalar_binary((int)Binary.Div, a, b.Handle));
        public static Tensor operator -(Tensor a) => a.neg();

        // ------------------------------------------------------------ reductions
        private Tensor Red(Reduce op, long[]? dims, bool keepdim, ScalarType? type)
        {
            dims ??= Array.Empty<long>();
            fixed (long* p = dims)
                return From(dlt_tensor_reduce((int)op, Handle, p, dims.Length, (sbyte)(keepdim ? 1 : 0), type == null ? -1 : (int)type.Value));
        }

        public Tensor sum() => Red(Reduce.Sum, null, false, null);
        public Tensor sum(long dim, bool keepdim = false, ScalarType? type = null) => Red(Reduce.Sum, new[] { dim }, keepdim, type);
        public Tensor sum(long[] dims, bool keepdim = false, ScalarType? type = null) => Red(Reduce.Sum, dims, keepdim, type);
        public Tensor mean() => Red(Reduce.Mean, null, false, null);
        public Tensor mean(long dim, bool keepdim = false) => Red(Reduce.Mean, new[] { dim }, keepdim, null);
        public Tensor mean(long[] dims, bool keepdim = false) => Red(Reduce.Mean, dims, keepdim, null);
        public Tensor max() => Red(Reduce.AMax, null, false, null);
        public Tensor min() => Red(Reduce.AMin, null, false, null);
        public Tensor amax(long[] dims, bool keepdim = false) => Red(Reduce.AMax, dims, keepdim, null);
        public Tensor amin(long[] dims, bool keepdim = false) => Red(Reduce.AMin, dims, keepdim, null);
        public Tensor prod() => Red(Reduce.Prod, null, false, null);
        public Tensor all() => Red(Reduce.All, null, false, null);
        public Tensor any() => Red(Reduce.Any, null, false, null);

        public (Tensor values, Tensor indexes) max(long dim, bool keepdim = false) => MaxDim(dim, keepdim, false);
        public (Tensor values, Tensor indexes) min(long dim, bool keepdim = false) => MaxDim(dim, keepdim, true);
        private (Tensor, Tensor) MaxDim(long dim, bool keepdim, bool isMin)
        {
            IntPtr v, i;
            if (dlt_tensor_max_dim(Handle, dim, (sbyte)(keepdim ? 1 : 0), (sbyte)(isMin ? 1 : 0), &v, &i) != 0) Errors.Throw();
            return (new Tensor(v), new Tensor(i));
        }
        public Tensor argmax() => From(dlt_tensor_argmax(Handle, 0, 0, 0, 0));
        public Tensor argmax(long dim, bool keepdim = false) => From(dlt_tensor_argmax(Handle, dim, 1, (sbyte)(keepdim ? 1 : 0), 0));
        public Tensor argmin(long dim, bool keepdim = false) => From(dlt_tensor_argmax(Handle, dim, 1, (sbyte)(keepdim ? 1 : 0), 1));
        public bool equal(Tensor other) { var r = dlt_tensor_equal(Handle, other.Handle); if (r < 0) Errors.Throw(); return r == 1; }

        /// <summary>True when |a-b| &lt;= atol + rtol*|b| everywhere (computed by libtorch).</summary>
        public bool allclose(Tensor other, double rtol = 1e-5, double atol = 1e-8)
        {
            using var scope = NewDisposeScope();
            using var a = to(ScalarType.Float64);
            using var b = other.to(ScalarType.Float64);
            var diff = (a - b).abs();
            var tol = b.abs() * rtol + atol;
            return diff.le(tol).all().item<bool>();
        }

        // ------------------------------------------------------------ autograd
        public void backward(Tensor? grad = null, bool retain_graph = false)
        {
            dlt_tensor_backward(Handle, grad?.Handle ?? IntPtr.Zero, (sbyte)(retain_graph ? 1 : 0));
            Errors.Check();
        }

        /// <summary>The gradient as a new handle, or null when there is none. Dispose it when done.</summary>
        public Tensor? grad
        {
            get
            {
                var g = dlt_tensor_grad(Handle);
                if (g == IntPtr.Zero) { Errors.Check(); return null; }
                return new Tensor(g);
            }
            set { dlt_tensor_set_grad(Handle, value?.Handle ?? IntPtr.Zero); Errors.Check(); }
        }

        public void retain_grad() { dlt_tensor_retain_grad(Handle); Errors.Check(); }

        /// <summary>Frees the extra handle an in-place call returns.</summary>
        private static void Release(IntPtr h)
        {
            Errors.Check(h);
            dlt_tensor_free(h);
        }
    }
}
