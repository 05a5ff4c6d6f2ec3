using System.Globalization;

namespace DeepLabTorch.Torch;

public static partial class torch
{
    public static partial class optim
    {
        /// <summary>A group of parameters with its own hyper-parameters (PyTorch's param_groups entry).</summary>
        public sealed class ParamGroup
        {
            public ParamGroup(IEnumerable<nn.Parameter> parameters, double? lr = null)
            {
                this.parameters = parameters.ToList();
                this.lr = lr ?? double.NaN;
            }

            public IReadOnlyList<nn.Parameter> parameters { get; }
            /// <summary>NaN means "use the optimizer's default"; filled in by the constructor.</summary>
            public double lr;
            /// <summary>The learning rate the group started with; schedulers scale from it.</summary>
            public double initial_lr;
            public double momentum;
            public double dampening;
            public double weight_decay;
            public bool nesterov;
            public double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
        }

        /// <summary>
        /// Base of the optimizers: per-parameter state tensors and step counts that can be read and
        /// written for exact resume. State keys follow PyTorch: parameters are numbered in group order.
        /// </summary>
        public abstract class Optimizer : IDisposable
        {
            protected readonly Dictionary<nn.Parameter, Dictionary<string, Tensor>> state = new(ReferenceEqualityComparer.Instance);
            protected readonly Dictionary<nn.Parameter, long> steps = new(ReferenceEqualityComparer.Instance);

            protected Optimizer(IEnumerable<ParamGroup> groups, double lr)
            {
                param_groups = groups.ToList();
                if (param_groups.Count == 0) throw new ArgumentException("optimizer got no parameter groups");
                foreach (var g in param_groups)
                {
                    if (double.IsNaN(g.lr)) g.lr = lr;
                    if (g.lr < 0) throw new ArgumentException($"invalid learning rate {g.lr}");
                    g.initial_lr = g.lr;
                }
            }

            public List<ParamGroup> param_groups { get; }

            /// <summary>Applies one update from the current gradients.</summary>
            public abstract void step();

            public void zero_grad(bool set_to_none = true)
            {
                foreach (var g in param_groups)
                    foreach (var p in g.parameters)
                    {
                        if (set_to_none) { p.grad = null; continue; }
                        using var grad = p.grad;
                        grad?.zero_();
                    }
            }

            protected Tensor? State(nn.Parameter p, string key) =>
                state.TryGetValue(p, out var d) && d.TryGetValue(key, out var t) ? t : null;

            protected void SetState(nn.Parameter p, string key, Tensor t)
            {
                if (!state.TryGetValue(p, out var d)) state[p] = d = new Dictionary<string, Tensor>();
                if (d.TryGetValue(key, out var old) && !ReferenceEquals(old, t)) old.Dispose();
                t.DetachFromDisposeScope();
                d[key] = t;
            }

            private IEnumerable<(int index, nn.Parameter p)> Numbered()
            {
                int i = 0;
                foreach (var g in param_groups) foreach (var p in g.parameters) yield return (i++, p);
            }

            /// <summary>
            /// State tensors as "state.{i}.{name}" (the optimizer's own tensors: do not dispose), and the
            /// scalars: "state.{i}.step" and "param_groups.{g}.lr".
            /// </summary>
            public (Dictionary<string, Tensor> tensors, Dictionary<string, double> scalars) state_dict()
            {
                var tensors = new Dictionary<string, Tensor>();
                var scalars = new Dictionary<string, double>();
                foreach (var (i, p) in Numbered())
                {
                    if (state.TryGetValue(p, out var d))
                        foreach (var (k, t) in d) tensors[$"state.{i}.{k}"] = t;
                    if (steps.TryGetValue(p, out var s)) scalars[$"state.{i}.step"] = s;
                }
                for (int g = 0; g < param_groups.Count; g++)
                {
                    scalars[$"param_groups.{g}.lr"] = param_groups[g].lr;
                    scalars[$"param_groups.{g}.initial_lr"] = param_groups[g].initial_lr;
                }
                return (tensors, scalars);
            }

            /// <summary>Restores state written by state_dict (copies the tensors).</summary>
            public void load_state_dict(IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, double> scalars)
            {
                var byIndex = Numbered().ToDictionary(x => x.index, x => x.p);
                foreach (var (key, t) in tensors)
                {
                    var parts = key.Split('.', 3);
                    if (parts.Length != 3 || parts[0] != "state" || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var i) || !byIndex.TryGetValue(i, out var p))
                        throw new ArgumentException($"optimizer state key '{key}' does not match this optimizer's {byIndex.Count} parameters");
                    if (!t.shape.SequenceEqual(p.shape))
                        throw new ArgumentException($"optimizer state '{key}' has shape [{string.Join(",", t.shape)}], parameter has [{string.Join(",", p.shape)}]");
                    using var _ = no_grad();
                    SetState(p, parts[2], t.to(p.device, p.dtype, copy: true));
                }
                foreach (var (key, v) in scalars)
                {
                    var parts = key.Split('.');
                    if (parts.Length == 3 && parts[0] == "state" && parts[2] == "step" && int.TryParse(parts[1], out var i) && byIndex.TryGetValue(i, out var p))
                        steps[p] = (long)v;
                    else if (parts.Length == 3 && parts[0] == "param_groups" && int.TryParse(parts[1], out var g) && g < param_groups.Count)
                    {
                        if (parts[2] == "lr") param_groups[g].lr = v;
                        else if (parts[2] == "initial_lr") param_groups[g].initial_lr = v;
                    }
                    else throw new ArgumentException($"unknown optimizer state scalar '{key}'");
                }
            }

            public void Dispose()
            {
                foreach (var d in state.Values) foreach (var t in d.Values) t.Dispose();
                state.Clear();
                GC.SuppressFinalize(this);
            }
        }

        /// <summary>
        /// Stochastic gradient descent as torch.optim.SGD: weight decay added to the gradient, momentum
        /// buffer b = μb + (1−dampening)g (b = g on the first step), nesterov g + μb, then p −= lr·d.
        /// </summary>
        public sealed class SGD : Optimizer
        {
            public SGD(IEnumerable<nn.Parameter> parameters, double lr, double momentum = 0, double dampening = 0, double weight_decay = 0, bool nesterov = false)
                : this(new[] { new ParamGroup(parameters) }, lr, momentum, dampening, weight_decay, nesterov) { }

            public SGD(IEnumerable<ParamGroup> groups, double lr, double momentum = 0, double dampening = 0, double weight_decay = 0, bool nesterov = false)
                : base(groups, lr)
            {
                if (nesterov && (momentum <= 0 || dampening != 0))
                    throw new ArgumentException("nesterov momentum requires a momentum and zero dampening");
                foreach (var g in param_groups)
                {
                    g.momentum = momentum; g.dampening = dampening; g.weight_decay = weight_decay; g.nesterov = nesterov;
                }
            }

            public override void step()
            {
                using var _ = no_grad();
                using var scope = NewDisposeScope();
                foreach (var g in param_groups)
                    foreach (var p in g.parameters)
                    {
                        var grad = p.grad;
                        if (grad == null) continue;
                        var d = grad;
                        if (g.weight_decay != 0) d = d.add(p, g.weight_decay);
                        if (g.momentum != 0)
                        {
                            var buf = State(p, "momentum_buffer");
                            if (buf == null)
                            {
                                buf = d.clone();
                                SetState(p, "momentum_buffer", buf);
                            }
                            else
                            {
                                buf.mul_(g.momentum).add_(d, 1 - g.dampening);
                            }
                            d = g.nesterov ? d.add(buf, g.momentum) : buf;
                        }
                        p.add_(d, -g.lr);
                    }
            }
        }

        /// <summary>
        /// Adam (and AdamW with decoupled weight decay) as torch.optim: m = β1m + (1−β1)g,
        /// v = β2v + (1−β2)g², p −= lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε).
        /// </summary>
        public class Adam : Optimizer
        {
            private readonly bool _decoupled;

            public Adam(IEnumerable<nn.Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weight_decay = 0)
                : this(new[] { new ParamGroup(parameters) }, lr, beta1, beta2, eps, weight_decay, false) { }

            public Adam(IEnumerable<ParamGroup> groups, double lr, double beta1, double beta2, double eps, double weight_decay, bool decoupled)
                : base(groups, lr)
            {
                _decoupled = decoupled;
                foreach (var g in param_groups)
                {
                    g.beta1 = beta1; g.beta2 = beta2; g.eps = eps; g.weight_decay = weight_decay;
                }
            }

            public override void step()
            {
                using var _ = no_grad();
                using var scope = NewDisposeScope();
                foreach (var g in param_groups)
                    foreach (var p in g.parameters)
                    {
                        var grad = p.grad;
                        if (grad == null) continue;
                        long t = steps.TryGetValue(p, out var s) ? s + 1 : 1;
                        steps[p] = t;
                        if (g.weight_decay != 0)
                        {
                            if (_decoupled) p.mul_(1 - g.lr * g.weight_decay);
                            else grad = grad.add(p, g.weight_decay);
                        }
                        var m = State(p, "exp_avg");
                        if (m == null) { m = zeros_like(p); SetState(p, "exp_avg", m); }
                        var v = State(p, "exp_avg_sq");
                        if (v == null) { v = zeros_like(p); SetState(p, "exp_avg_sq", v); }
                        m.mul_(g.beta1).add_(grad, 1 - g.beta1);
                        v.mul_(g.beta2).addcmul_(grad, grad, 1 - g.beta2);
                        double bc1 = 1 - Math.Pow(g.beta1, t);
                        double bc2 = 1 - Math.Pow(g.beta2, t);
                        var denom = v.sqrt().div_(Math.Sqrt(bc2)).add_(g.eps);
                        p.addcdiv_(m, denom, -g.lr / bc1);
                    }
            }
        }

        public sealed class AdamW : Adam
        {
            public AdamW(IEnumerable<nn.Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weight_decay = 1e-2)
                : base(new[] { new ParamGroup(parameters) }, lr, beta1, beta2, eps, weight_decay, true) { }

            public AdamW(IEnumerable<ParamGroup> groups, double lr, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weight_decay = 1e-2)
                : base(groups, lr, beta1, beta2, eps, weight_decay, true) { }
        }
    }
}
