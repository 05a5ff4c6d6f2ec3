namespace DeepLabTorch.Torch;

public static partial class torch
{
    public static partial class nn
    {
        /// <summary>torch.nn.init: in-place initialisers (no autograd).</summary>
        public static class init
        {
            public enum FanMode { FanIn, FanOut }

            public static (long fanIn, long fanOut) calculate_fan_in_and_fan_out(Tensor t)
            {
                var s = t.shape;
                if (s.Length < 2) throw new ArgumentException("fan in/out needs a tensor of at least 2 dimensions");
                long receptive = 1;
                for (int i = 2; i < s.Length; i++) receptive *= s[i];
                return (s[1] * receptive, s[0] * receptive);
            }

            /// <summary>The recommended gain for a nonlinearity ("relu", "leaky_relu", "linear", "tanh", "sigmoid").</summary>
            public static double calculate_gain(string nonlinearity, double param = 0.01) => nonlinearity switch
            {
                "linear" or "conv2d" or "sigmoid" => 1.0,
                "tanh" => 5.0 / 3,
                "relu" => Math.Sqrt(2.0),
                "leaky_relu" => Math.Sqrt(2.0 / (1 + param * param)),
                _ => throw new ArgumentException($"unknown nonlinearity {nonlinearity}"),
            };

            public static Tensor normal_(Tensor t, double mean = 0, double std = 1)
            {
                using var _ = no_grad();
                using var r = randn(t.shape, t.dtype, t.device);
                if (std != 1) r.mul_(std);
                if (mean != 0) r.add_(mean);
                return t.copy_(r);
            }

            public static Tensor uniform_(Tensor t, double a = 0, double b = 1)
            {
                using var _ = no_grad();
                using var r = rand(t.shape, t.dtype, t.device);
                r.mul_(b - a).add_(a);
                return t.copy_(r);
            }

            public static Tensor constant_(Tensor t, double value)
            {
                using var _ = no_grad();
                return t.fill_(value);
            }
            public static Tensor zeros_(Tensor t) => constant_(t, 0);
            public static Tensor ones_(Tensor t) => constant_(t, 1);

            /// <summary>He init: N(0, gain/sqrt(fan)) with gain for leaky_relu(a) (a = 0: relu).</summary>
            public static Tensor kaiming_normal_(Tensor t, double a = 0, FanMode mode = FanMode.FanIn, string nonlinearity = "leaky_relu")
            {
                var (fi, fo) = calculate_fan_in_and_fan_out(t);
                var std = calculate_gain(nonlinearity, a) / Math.Sqrt(mode == FanMode.FanIn ? fi : fo);
                return normal_(t, 0, std);
            }

            public static Tensor kaiming_uniform_(Tensor t, double a = 0, FanMode mode = FanMode.FanIn, string nonlinearity = "leaky_relu")
            {
                var (fi, fo) = calculate_fan_in_and_fan_out(t);
                var bound = calculate_gain(nonlinearity, a) * Math.Sqrt(3.0 / (mode == FanMode.FanIn ? fi : fo));
                return uniform_(t, -bound, bound);
            }
        }
    }
}
