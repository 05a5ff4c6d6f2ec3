using System.Runtime.InteropServices;

namespace DeepLabTorch.Torch.Native;

// nn.functional area of the flat C API (src/Native/nn.cpp).
internal static unsafe partial class NativeMethods
{
    [DllImport(Lib)] internal static extern IntPtr dlt_nn_conv2d(IntPtr input, IntPtr weight, IntPtr bias, long* stride, long* padding, long* dilation, long groups);
    [DllImport(Lib)] internal static extern IntPtr dlt_nn_batch_norm(IntPtr input, IntPtr weight, IntPtr bias, IntPtr runningMean, IntPtr runningVar, sbyte training, double momentum, double eps);
    [DllImport(Lib)] internal static extern IntPtr dlt_nn_dropout(IntPtr input, double p, sbyte training, sbyte channelwise);
    [DllImport(Lib)] internal static extern IntPtr dlt_nn_leaky_relu(IntPtr input, double slope, sbyte inplace);
    [DllImport(Lib)] internal static extern IntPtr dlt_nn_hardtanh(IntPtr input, double lo, double hi, sbyte inplace);
    [DllImport(Lib)] internal static extern IntPtr dlt_nn_relu(IntPtr input, sbyte inplace);
    [DllImport(Lib)] internal static extern IntPtr dlt_nn_max_pool2d(IntPtr input, long* kernel, long* stride, long* padding, long* dilation, sbyte ceilMode);
    [DllImport(Lib)] internal static extern IntPtr dlt_nn_avg_pool2d(IntPtr input, long* kernel, long* stride, long* padding, sbyte ceilMode, sbyte countIncludePad);
    [DllImport(Lib)] internal static extern IntPtr dlt_nn_adaptive_avg_pool2d(IntPtr input, long* outputSize);
    [DllImport(Lib)] internal static extern IntPtr dlt_nn_interpolate(IntPtr input, long* size, int mode, sbyte alignCorners);
    [DllImport(Lib)] internal static extern IntPtr dlt_nn_pad(IntPtr input, long* pads, int n, int mode, double value);
    [DllImport(Lib)] internal static extern IntPtr dlt_nn_softmax(IntPtr input, long dim, sbyte log);
    [DllImport(Lib)] internal static extern IntPtr dlt_nn_cross_entropy(IntPtr input, IntPtr target, IntPtr weight, int reduction, long ignoreIndex, double labelSmoothing);
    [DllImport(Lib)] internal static extern IntPtr dlt_nn_nll_loss(IntPtr input, IntPtr target, IntPtr weight, int reduction, long ignoreIndex);
    [DllImport(Lib)] internal static extern IntPtr dlt_nn_bce_with_logits(IntPtr input, IntPtr target, IntPtr weight, int reduction);
}
