using DeepLabTorch.Torch.Native;
using static DeepLabTorch.Torch.Native.NativeMethods;

namespace DeepLabTorch.Torch;

public static partial class torch
{
    public static partial class nn
    {
        public enum Reduction { None = 0, Mean = 1, Sum = 2 }
        public enum InterpolationMode { Nearest = 0, Bilinear = 1 }
        public enum PaddingModes { Constant = 0, Reflect = 1, Replicate = 2 }

        /// <summary>torch.nn.functional, the stateless layers and losses.</summary>
        public static unsafe class functional
        {
            private static IntPtr H(Tensor? t) => t?.Handle ?? IntPtr.Zero;
            private static sbyte B(bool b) => (sbyte)(b ? 1 : 0);

            public static Tensor conv2d(Tensor input, Tensor weight, Tensor? bias = null, (long, long)? stride = null, (long, long)? padding = null,
                (long, long)? dilation = null, long groups = 1)
            {
                var s = stride ?? (1, 1); var p = padding ?? (0, 0); var d = dilation ?? (1, 1);
                long* sp = stackalloc long[] { s.Item1, s.Item2 };
                long* pp = stackalloc long[] { p.Item1, p.Item2 };
                long* dp = stackalloc long[] { d.Item1, d.Item2 };
                return Tensor.From(dlt_nn_conv2d(input.Handle, weight.Handle, H(bias), sp, pp, dp, groups));
            }

            public static Tensor batch_norm(Tensor input, Tensor? running_mean, Tensor? running_var, Tensor? weight = null, Tensor? bias = null,
                bool training = false, double momentum = 0.1, double eps = 1e-5) =>
                Tensor.From(dlt_nn_batch_norm(input.Handle, H(weight), H(bias), H(running_mean), H(running_var), B(training), momentum, eps));

            public static Tensor relu(Tensor x, bool inplace = false) => Tensor.From(dlt_nn_relu(x.Handle, B(inplace)));
            public static Tensor relu6(Tensor x, bool inplace = false) => hardtanh(x, 0, 6, inplace);
            public static Tensor hardtanh(Tensor x, double min_val = -1, double max_val = 1, bool inplace = false) =>
                Tensor.From(dlt_nn_hardtanh(x.Handle, min_val, max_val, B(inplace)));
            public static Tensor leaky_relu(Tensor x, double negative_slope = 0.01, bool inplace = false) =>
                Tensor.From(dlt_nn_leaky_relu(x.Handle, negative_slope, B(inplace)));
            public static Tensor sigmoid(Tensor x) => x.sigmoid();

            public static Tensor dropout(Tensor x, double p = 0.5, bool training = true) => Tensor.From(dlt_nn_dropout(x.Handle, p, B(training), 0));
            public static Tensor dropout2d(Tensor x, double p = 0.5, bool training = true) => Tensor.From(dlt_nn_dropout(x.Handle, p, B(training), 1));

            public static Tensor max_pool2d(Tensor x, (long, long) kernel_size, (long, long)? stride = null, (long, long)? padding = null,
                (long, long)? dilation = null, bool ceil_mode = false)
            {
                var s = stride ?? kernel_size; var p = padding ?? (0, 0); var d = dilation ?? (1, 1);
                long* kp = stackalloc long[] { kernel_size.Item1, kernel_size.Item2 };
                long* sp = stackalloc long[] { s.Item1, s.Item2 };
                long* pp = stackalloc long[] { p.Item1, p.Item2 };
                long* dp = stackalloc long[] { d.Item1, d.Item2 };
                return Tensor.From(dlt_nn_max_pool2d(x.Handle, kp, sp, pp, dp, B(ceil_mode)));
            }

            public static Tensor avg_pool2d(Tensor x, (long, long) kernel_size, (long, long)? stride = null, (long, long)? padding = null,
                bool ceil_mode = false, bool count_include_pad = true)
            {
                var s = stride ?? kernel_size; var p = padding ?? (0, 0);
                long* kp = stackalloc long[] { kernel_size.Item1, kernel_size.Item2 };
                long* sp = stackalloc long[] { s.Item1, s.Item2 };
                long* pp = stackalloc long[] { p.Item1, p.Item2 };
                return Tensor.From(dlt_nn_avg_pool2d(x.Handle, kp, sp, pp, B(ceil_mode), B(count_include_pad)));
            }

            public static Tensor adaptive_avg_pool2d(Tensor x, (long, long) output_size)
            {
                long* op = stackalloc long[] { output_size.Item1, output_size.Item2 };
                return Tensor.From(dlt_nn_adaptive_avg_pool2d(x.Handle, op));
            }

            /// <summary>Resizes NCHW to (H, W). align_corners applies to bilinear, as in PyTorch.</summary>
            public static Tensor interpolate(Tensor x, (long, long) size, InterpolationMode mode = InterpolationMode.Nearest, bool align_corners = false)
            {
                long* sp = stackalloc long[] { size.Item1, size.Item2 };
                return Tensor.From(dlt_nn_interpolate(x.Handle, sp, (int)mode, B(align_corners)));
            }

            /// <summary>Pads as torch.nn.functional.pad: pads = (left, right, top, bottom, ...).</summary>
            public static Tensor pad(Tensor x, long[] pads, PaddingModes mode = PaddingModes.Constant, double value = 0)
            {
                fixed (long* p = pads) return Tensor.From(dlt_nn_pad(x.Handle, p, pads.Length, (int)mode, value));
            }

            public static Tensor softmax(Tensor x, long dim) => Tensor.From(dlt_nn_softmax(x.Handle, dim, 0));
            public static Tensor log_softmax(Tensor x, long dim) => Tensor.From(dlt_nn_softmax(x.Handle, dim, 1));

            public static Tensor cross_entropy(Tensor input, Tensor target, Tensor? weight = null, long ignore_index = -100,
                Reduction reduction = Reduction.Mean, double label_smoothing = 0) =>
                Tensor.From(dlt_nn_cross_entropy(input.Handle, target.Handle, H(weight), (int)reduction, ignore_index, label_smoothing));

            public static Tensor nll_loss(Tensor input, Tensor target, Tensor? weight = null, long ignore_index = -100, Reduction reduction = Reduction.Mean) =>
                Tensor.From(dlt_nn_nll_loss(input.Handle, target.Handle, H(weight), (int)reduction, ignore_index));

            public static Tensor binary_cross_entropy_with_logits(Tensor input, Tensor target, Tensor? weight = null, Reduction reduction = Reduction.Mean) =>
                Tensor.From(dlt_nn_bce_with_logits(input.Handle, target.Handle, H(weight), (int)reduction));
        }
    }
}
