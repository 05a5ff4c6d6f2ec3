using System.Runtime.InteropServices;

namespace DeepLabTorch.Torch.Native;

// Tensor area of the flat C API (src/Native/tensor.cpp). Handles are IntPtr; bools are bytes.
internal static unsafe partial class NativeMethods
{
    private const string Lib = NativeLoader.LibraryName;

    [DllImport(Lib)] internal static extern int dlt_last_error(byte* buffer, int capacity);

    [DllImport(Lib)] internal static extern void dlt_tensor_free(IntPtr h);
    [DllImport(Lib)] internal static extern long dlt_tensor_numel(IntPtr h);
    [DllImport(Lib)] internal static extern int dlt_tensor_dim(IntPtr h);
    [DllImport(Lib)] internal static extern int dlt_tensor_sizes(IntPtr h, long* output, int capacity);
    [DllImport(Lib)] internal static extern int dlt_tensor_strides(IntPtr h, long* output, int capacity);
    [DllImport(Lib)] internal static extern int dlt_tensor_dtype(IntPtr h);
    [DllImport(Lib)] internal static extern int dlt_tensor_device_type(IntPtr h);
    [DllImport(Lib)] internal static extern int dlt_tensor_device_index(IntPtr h);
    [DllImport(Lib)] internal static extern sbyte dlt_tensor_requires_grad(IntPtr h);
    [DllImport(Lib)] internal static extern void dlt_tensor_set_requires_grad(IntPtr h, sbyte on);
    [DllImport(Lib)] internal static extern sbyte dlt_tensor_is_leaf(IntPtr h);
    [DllImport(Lib)] internal static extern sbyte dlt_tensor_is_contiguous(IntPtr h, int memoryFormat);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_data_ptr(IntPtr h);
    [DllImport(Lib)] internal static extern long dlt_tensor_element_size(IntPtr h);

    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_factory(int kind, long* shape, int ndim, int dtype, int devType, int devIndex, sbyte requiresGrad, double value);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_randint(long low, long high, long* shape, int ndim, int dtype, int devType, int devIndex);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_arange(double start, double end, double step, int dtype, int devType, int devIndex);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_from_data(void* data, long nbytes, long* shape, int ndim, int dtype);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_from_blob(void* data, long* shape, int ndim, int dtype, IntPtr deleter, IntPtr ctx);

    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_to(IntPtr h, int devType, int devIndex, int dtype, sbyte nonBlocking, sbyte copy);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_contiguous(IntPtr h, int memoryFormat);
    [DllImport(Lib)] internal static extern void dlt_tensor_set_data(IntPtr h, IntPtr src);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_clone(IntPtr h);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_detach(IntPtr h);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_alias(IntPtr h);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_view(IntPtr h, long* shape, int n);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_reshape(IntPtr h, long* shape, int n);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_permute(IntPtr h, long* dims, int n);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_expand(IntPtr h, long* shape, int n);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_flip(IntPtr h, long* dims, int n);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_transpose(IntPtr h, long d0, long d1);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_squeeze(IntPtr h, long dim);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_unsqueeze(IntPtr h, long dim);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_flatten(IntPtr h, long start, long end);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_slice(IntPtr h, long dim, long start, long end, long step);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_select(IntPtr h, long dim, long index);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_narrow(IntPtr h, long dim, long start, long length);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_index_select(IntPtr h, long dim, IntPtr index);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_gather(IntPtr h, long dim, IntPtr index);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_masked_select(IntPtr h, IntPtr mask);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_masked_fill(IntPtr h, IntPtr mask, double value, sbyte inplace);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_cat(IntPtr* hs, int n, long dim);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_stack(IntPtr* hs, int n, long dim);

    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_unary(int op, IntPtr h);
    [DllImport(Lib)] internal static extern void dlt_tensor_unary_(int op, IntPtr h);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_binary(int op, IntPtr a, IntPtr b);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_binary_scalar(int op, IntPtr a, double b);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_scalar_binary(int op, double a, IntPtr b);
    [DllImport(Lib)] internal static extern void dlt_tensor_binary_(int op, IntPtr a, IntPtr b);
    [DllImport(Lib)] internal static extern void dlt_tensor_binary_scalar_(int op, IntPtr a, double b);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_add_scaled(IntPtr a, IntPtr b, double alpha);
    [DllImport(Lib)] internal static extern void dlt_tensor_add_scaled_(IntPtr a, IntPtr b, double alpha);
    [DllImport(Lib)] internal static extern void dlt_tensor_addcmul_(IntPtr t, IntPtr a, IntPtr b, double value);
    [DllImport(Lib)] internal static extern void dlt_tensor_addcdiv_(IntPtr t, IntPtr a, IntPtr b, double value);
    [DllImport(Lib)] internal static extern void dlt_tensor_copy_(IntPtr dst, IntPtr src);
    [DllImport(Lib)] internal static extern void dlt_tensor_fill_(IntPtr h, double value);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_clamp(IntPtr h, double lo, double hi, sbyte hasMin, sbyte hasMax, sbyte inplace);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_where(IntPtr cond, IntPtr a, IntPtr b);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_bincount(IntPtr h, IntPtr weights, long minlength);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_cumsum(IntPtr h, long dim);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_one_hot(IntPtr h, long numClasses);

    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_reduce(int op, IntPtr h, long* dims, int ndims, sbyte keepdim, int outDtype);
    [DllImport(Lib)] internal static extern int dlt_tensor_max_dim(IntPtr h, long dim, sbyte keepdim, sbyte isMin, IntPtr* values, IntPtr* indices);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_argmax(IntPtr h, long dim, sbyte hasDim, sbyte keepdim, sbyte isMin);
    [DllImport(Lib)] internal static extern double dlt_tensor_item_double(IntPtr h);
    [DllImport(Lib)] internal static extern long dlt_tensor_item_long(IntPtr h);
    [DllImport(Lib)] internal static extern sbyte dlt_tensor_equal(IntPtr a, IntPtr b);
    [DllImport(Lib)] internal static extern int dlt_tensor_to_string(IntPtr h, byte* buffer, int capacity);

    [DllImport(Lib)] internal static extern void dlt_tensor_backward(IntPtr h, IntPtr grad, sbyte retainGraph);
    [DllImport(Lib)] internal static extern IntPtr dlt_tensor_grad(IntPtr h);
    [DllImport(Lib)] internal static extern void dlt_tensor_set_grad(IntPtr h, IntPtr grad);
    [DllImport(Lib)] internal static extern void dlt_tensor_retain_grad(IntPtr h);
    [DllImport(Lib)] internal static extern sbyte dlt_grad_enabled();
    [DllImport(Lib)] internal static extern void dlt_set_grad_enabled(sbyte on);
    [DllImport(Lib)] internal static extern IntPtr dlt_inference_mode_enter();
    [DllImport(Lib)] internal static extern void dlt_inference_mode_exit(IntPtr guard);

    [DllImport(Lib)] internal static extern void dlt_manual_seed(ulong seed);
    [DllImport(Lib)] internal static extern void dlt_set_num_threads(int n);
    [DllImport(Lib)] internal static extern int dlt_get_num_threads();
    [DllImport(Lib)] internal static extern void dlt_set_num_interop_threads(int n);
    [DllImport(Lib)] internal static extern sbyte dlt_cuda_is_available();
    [DllImport(Lib)] internal static extern int dlt_cuda_device_count();
    [DllImport(Lib)] internal static extern void dlt_cuda_synchronize(int device);
    [DllImport(Lib)] internal static extern void dlt_set_cudnn_benchmark(sbyte on);
    [DllImport(Lib)] internal static extern void dlt_set_deterministic(sbyte on);
    [DllImport(Lib)] internal static extern int dlt_version(byte* buffer, int capacity);
    [DllImport(Lib)] internal static extern int dlt_build_info(byte* buffer, int capacity);
    [DllImport(Lib)] internal static extern int dlt_parallel_info(byte* buffer, int capacity);
    [DllImport(Lib)] internal static extern IntPtr dlt_rng_get_state();
    [DllImport(Lib)] internal static extern void dlt_rng_set_state(IntPtr state);

    /// <summary>Reads a string through the two-call (size, then fill) pattern.</summary>
    internal delegate int StringGetter(byte* buffer, int capacity);

    internal static string ReadString(StringGetter getter)
    {
        int len = getter(null, 0);
        if (len < 0) Errors.Throw();
        var buf = new byte[len + 1];
        fixed (byte* p = buf) getter(p, buf.Length);
        return System.Text.Encoding.UTF8.GetString(buf, 0, len);
    }
}
