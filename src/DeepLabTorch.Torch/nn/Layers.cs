using F = DeepLabTorch.Torch.torch.nn.functional;

namespace DeepLabTorch.Torch;

public static partial class torch
{
    public static partial class nn
    {
        public sealed class Conv2d : Module<Tensor, Tensor>
        {
            public readonly Parameter weight;
            public readonly Parameter? bias;
            public (long, long) stride, padding, dilation;
            public long groups;

            public Conv2d(long in_channels, long out_channels, long kernel_size, long stride = 1, long padding = 0, long dilation = 1,
                long groups = 1, bool bias = true) : this(in_channels, out_channels, (kernel_size, kernel_size), (stride, stride),
                (padding, padding), (dilation, dilation), groups, bias) { }

            public Conv2d(long in_channels, long out_channels, (long, long) kernel_size, (long, long) stride, (long, long) padding,
                (long, long) dilation, long groups = 1, bool bias = true) : base(nameof(Conv2d))
            {
                if (in_channels % groups != 0 || out_channels % groups != 0)
                    throw new ArgumentException($"channels ({in_channels}→{out_channels}) must be divisible by groups ({groups})");
                this.stride = stride; this.padding = padding; this.dilation = dilation; this.groups = groups;
                using (var w = empty(new[] { out_channels, in_channels / groups, kernel_size.Item1, kernel_size.Item2 }))
                    weight = new Parameter(w);
                // PyTorch's default: kaiming_uniform(a=√5) → U(±1/√fan_in) for weight and bias.
                init.kaiming_uniform_(weight, Math.Sqrt(5));
                if (bias)
                {
                    using var b = empty(new[] { out_channels });
                    this.bias = new Parameter(b);
                    var bound = 1 / Math.Sqrt(in_channels / groups * kernel_size.Item1 * kernel_size.Item2);
                    init.uniform_(this.bias, -bound, bound);
                }
                RegisterComponents();
            }

            public override Tensor forward(Tensor x) => F.conv2d(x, weight, bias, stride, padding, dilation, groups);
        }

        public sealed class BatchNorm2d : Module<Tensor, Tensor>
        {
            public readonly Parameter? weight;
            public readonly Parameter? bias;
            public readonly Tensor? running_mean;
            public readonly Tensor? running_var;
            public readonly Tensor? num_batches_tracked;
            public double eps;
            /// <summary>Null means a cumulative moving average, as in PyTorch.</summary>
            public double? momentum;

            public BatchNorm2d(long num_features, double eps = 1e-5, double? momentum = 0.1, bool affine = true, bool track_running_stats = true)
                : base(nameof(BatchNorm2d))
            {
                this.eps = eps; this.momentum = momentum;
                if (affine)
                {
                    using (var w = ones(new[] { num_features })) weight = new Parameter(w);
                    using (var b = zeros(new[] { num_features })) bias = new Parameter(b);
                }
                if (track_running_stats)
                {
                    running_mean = zeros(new[] { num_features }).DetachFromDisposeScope();
                    running_var = ones(new[] { num_features }).DetachFromDisposeScope();
                    num_batches_tracked = zeros(Array.Empty<long>(), ScalarType.Int64).DetachFromDisposeScope();
                }
                RegisterComponents();
            }

            public override Tensor forward(Tensor x)
            {
                double factor = momentum ?? 0.0;
                if (training && num_batches_tracked != null)
                {
                    using (no_grad()) num_batches_tracked.add_(1);
                    if (momentum == null) factor = 1.0 / num_batches_tracked.item<long>();
                }
                bool useBatchStats = training || running_mean == null;
                return F.batch_norm(x, running_mean, running_var, weight, bias, useBatchStats, factor, eps);
            }
        }

        public sealed class ReLU : Module<Tensor, Tensor>
        {
            private readonly bool _inplace;
            public ReLU(bool inplace = false) : base(nameof(ReLU)) { _inplace = inplace; }
            public override Tensor forward(Tensor x) => F.relu(x, _inplace);
        }

        public sealed class ReLU6 : Module<Tensor, Tensor>
        {
            private readonly bool _inplace;
            public ReLU6(bool inplace = false) : base(nameof(ReLU6)) { _inplace = inplace; }
            public override Tensor forward(Tensor x) => F.relu6(x, _inplace);
        }

        public sealed class LeakyReLU : Module<Tensor, Tensor>
        {
            private readonly double _slope;
            private readonly bool _inplace;
            public LeakyReLU(double negative_slope = 0.01, bool inplace = false) : base(nameof(LeakyReLU)) { _slope = negative_slope; _inplace = inplace; }
            public override Tensor forward(Tensor x) => F.leaky_relu(x, _slope, _inplace);
        }

        public sealed class Dropout : Module<Tensor, Tensor>
        {
            public double p;
            public Dropout(double p = 0.5) : base(nameof(Dropout)) { this.p = p; }
            public override Tensor forward(Tensor x) => F.dropout(x, p, training);
        }

        public sealed class Dropout2d : Module<Tensor, Tensor>
        {
            public double p;
            public Dropout2d(double p = 0.5) : base(nameof(Dropout2d)) { this.p = p; }
            public override Tensor forward(Tensor x) => F.dropout2d(x, p, training);
        }

        public sealed class MaxPool2d : Module<Tensor, Tensor>
        {
            private readonly (long, long) _k, _s, _p;
            public MaxPool2d(long kernel_size, long? stride = null, long padding = 0) : base(nameof(MaxPool2d))
            {
                _k = (kernel_size, kernel_size); var s = stride ?? kernel_size; _s = (s, s); _p = (padding, padding);
            }
            public override Tensor forward(Tensor x) => F.max_pool2d(x, _k, _s, _p);
        }

        public sealed class AvgPool2d : Module<Tensor, Tensor>
        {
            private readonly (long, long) _k, _s, _p;
            public AvgPool2d(long kernel_size, long? stride = null, long padding = 0) : base(nameof(AvgPool2d))
            {
                _k = (kernel_size, kernel_size); var s = stride ?? kernel_size; _s = (s, s); _p = (padding, padding);
            }
            public override Tensor forward(Tensor x) => F.avg_pool2d(x, _k, _s, _p);
        }

        public sealed class AdaptiveAvgPool2d : Module<Tensor, Tensor>
        {
            private readonly (long, long) _size;
            public AdaptiveAvgPool2d((long, long) output_size) : base(nameof(AdaptiveAvgPool2d)) { _size = output_size; }
            public AdaptiveAvgPool2d(long output_size) : this((output_size, output_size)) { }
            public override Tensor forward(Tensor x) => F.adaptive_avg_pool2d(x, _size);
        }

        /// <summary>Returns its input as a new handle (so callers may dispose results uniformly).</summary>
        public sealed class Identity : Module<Tensor, Tensor>
        {
            public Identity() : base(nameof(Identity)) { }
            public override Tensor forward(Tensor x) => x.alias();
        }

        /// <summary>Children named "0", "1", ... run in order; intermediate results are freed as it goes.</summary>
        public sealed class Sequential : Module<Tensor, Tensor>
        {
            private readonly List<Module<Tensor, Tensor>> _layers = new();

            public Sequential(params Module<Tensor, Tensor>[] layers) : base(nameof(Sequential))
            {
                foreach (var l in layers) append(l);
            }

            public Sequential(params (string name, Module<Tensor, Tensor> module)[] layers) : base(nameof(Sequential))
            {
                foreach (var (n, l) in layers) { register_module(n, l); _layers.Add(l); }
            }

            public Sequential append(Module<Tensor, Tensor> layer)
            {
                register_module(_layers.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), layer);
                _layers.Add(layer);
                return this;
            }

            public int Count => _layers.Count;
            public Module<Tensor, Tensor> this[int i] => _layers[i];

            public override Tensor forward(Tensor x)
            {
                if (_layers.Count == 0) return x.alias();
                var current = x;
                foreach (var layer in _layers)
                {
                    var next = layer.forward(current);
                    if (!ReferenceEquals(current, x)) current.Dispose();
                    current = next;
                }
                return current;
            }
        }

        /// <summary>Children named "0", "1", ...; no forward of its own.</summary>
        public sealed class ModuleList<T> : Module where T : Module
        {
            private readonly List<T> _items = new();
            public ModuleList(params T[] items) : base("ModuleList") { foreach (var i in items) append(i); }
            public ModuleList<T> append(T item)
            {
                register_module(_items.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), item);
                _items.Add(item);
                return this;
            }
            public int Count => _items.Count;
            public T this[int i] => _items[i];
            public IEnumerator<T> GetEnumerator() => _items.GetEnumerator();
        }
    }
}
