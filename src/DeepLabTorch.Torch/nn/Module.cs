using System.Reflection;

namespace DeepLabTorch.Torch;

public static partial class torch
{
    public static partial class nn
    {
        /// <summary>A tensor that a module trains. Never belongs to a dispose scope.</summary>
        public sealed class Parameter : Tensor
        {
            public Parameter(Tensor data, bool requires_grad = true) : base(Native.NativeMethods.dlt_tensor_detach(data.Handle))
            {
                DetachFromDisposeScope();
                this.requires_grad = requires_grad;
            }
        }

        /// <summary>Marks a Tensor field that RegisterComponents must not register as a buffer.</summary>
        [AttributeUsage(AttributeTargets.Field)]
        public sealed class NotAComponentAttribute : Attribute { }

        /// <summary>
        /// torch.nn.Module: registered parameters, buffers and submodules with PyTorch's dotted names,
        /// state_dict / load_state_dict, train/eval and device moves.
        /// </summary>
        public abstract class Module : IDisposable
        {
            private readonly Dictionary<string, Parameter?> _parameters = new();
            private readonly Dictionary<string, Tensor?> _buffers = new();
            private readonly HashSet<string> _nonPersistent = new();
            private readonly Dictionary<string, Module> _modules = new();
            private bool _disposed;

            protected Module(string name) { this.name = name; }

            public string name { get; }
            public bool training { get; private set; } = true;

            // ------------------------------------------------------ registration
            public void register_parameter(string name, Parameter? p)
            {
                CheckName(name);
                _parameters[name] = p;
            }

            public void register_buffer(string name, Tensor? t, bool persistent = true)
            {
                CheckName(name);
                t?.DetachFromDisposeScope();
                _buffers[name] = t;
                if (!persistent) _nonPersistent.Add(name); else _nonPersistent.Remove(name);
            }

            public void register_module(string name, Module m)
            {
                CheckName(name);
                _modules[name] = m;
            }

            private static void CheckName(string name)
            {
                if (string.IsNullOrEmpty(name) || name.Contains('.'))
                    throw new ArgumentException($"invalid component name '{name}': it must be non-empty and contain no '.'");
            }

            /// <summary>
            /// Registers this object's fields by their names, in declaration order: Parameter fields as
            /// parameters, Module fields as submodules, other Tensor fields as buffers. Null fields are skipped.
            /// </summary>
            protected void RegisterComponents()
            {
                var types = new Stack<Type>();
                for (var t = GetType(); t != null && t != typeof(Module); t = t.BaseType) types.Push(t);
                foreach (var type in types)
                {
                    foreach (var f in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                    {
                        if (f.IsDefined(typeof(NotAComponentAttribute)) || f.Name.Contains('<')) continue;
                        var value = f.GetValue(this);
                        switch (value)
                        {
                            case Parameter p: register_parameter(f.Name, p); break;
                            case Module m: register_module(f.Name, m); break;
                            case Tensor b: register_buffer(f.Name, b); break;
                        }
                    }
                }
            }

            // ------------------------------------------------------ traversal
            public IEnumerable<(string name, Module module)> named_children() => _modules.Select(kv => (kv.Key, kv.Value));
            public IEnumerable<Module> children() => _modules.Values;

            public IEnumerable<(string name, Module module)> named_modules(string prefix = "")
            {
                yield return (prefix, this);
                foreach (var (n, m) in _modules)
                    foreach (var item in m.named_modules(prefix.Length == 0 ? n : prefix + "." + n))
                        yield return item;
            }
            public IEnumerable<Module> modules() => named_modules().Select(x => x.module);

            public IEnumerable<(string name, Parameter parameter)> named_parameters(bool recurse = true)
            {
                // A tensor shared by two modules is listed once, under its first name (as PyTorch does).
                var seen = new HashSet<Parameter>(ReferenceEqualityComparer.Instance);
                foreach (var (prefix, m) in recurse ? named_modules() : new[] { ("", this) })
                    foreach (var (n, p) in m._parameters)
                        if (p != null && seen.Add(p))
                            yield return (prefix.Length == 0 ? n : prefix + "." + n, p);
            }
            public IEnumerable<Parameter> parameters(bool recurse = true) => named_parameters(recurse).Select(x => x.parameter);

            public IEnumerable<(string name, Tensor buffer)> named_buffers(bool recurse = true)
            {
                foreach (var (prefix, m) in recurse ? named_modules() : new[] { ("", this) })
                    foreach (var (n, b) in m._buffers)
                        if (b != null)
                            yield return (prefix.Length == 0 ? n : prefix + "." + n, b);
            }
            public IEnumerable<Tensor> buffers(bool recurse = true) => named_buffers(recurse).Select(x => x.buffer);

            public Module? get_submodule(string path)
            {
                Module current = this;
                foreach (var part in path.Split('.', StringSplitOptions.RemoveEmptyEntries))
                    if (!current._modules.TryGetValue(part, out current!)) return null;
                return current;
            }

            // ------------------------------------------------------ state
            /// <summary>
            /// Parameters and persistent buffers by dotted name, in PyTorch's order (each module's own
            /// parameters, then its buffers, then its children). The tensors are the module's own: do not dispose them.
            /// </summary>
            public Dictionary<string, Tensor> state_dict()
            {
                var d = new Dictionary<string, Tensor>();
                Collect(d, "");
                return d;
            }

            private void Collect(Dictionary<string, Tensor> d, string prefix)
            {
                foreach (var (n, p) in _parameters) if (p != null) d[prefix + n] = p;
                foreach (var (n, b) in _buffers) if (b != null && !_nonPersistent.Contains(n)) d[prefix + n] = b;
                foreach (var (n, m) in _modules) m.Collect(d, prefix + n + ".");
            }

            /// <summary>
            /// Copies values into the module's tensors. Shape mismatches always throw and name every
            /// offending key; with strict, missing and unexpected keys throw too.
            /// </summary>
            public (IReadOnlyList<string> missing, IReadOnlyList<string> unexpected) load_state_dict(
                IReadOnlyDictionary<string, Tensor> source, bool strict = true)
            {
                var own = state_dict();
                var missing = own.Keys.Where(k => !source.ContainsKey(k)).ToList();
                var unexpected = source.Keys.Where(k => !own.ContainsKey(k)).ToList();
                var mismatched = new List<string>();
                foreach (var (k, t) in own)
                {
                    if (!source.TryGetValue(k, out var s)) continue;
                    var a = t.shape; var b = s.shape;
                    if (!a.SequenceEqual(b)) mismatched.Add($"{k}: checkpoint [{string.Join(", ", b)}] vs model [{string.Join(", ", a)}]");
                }
                var problems = new List<string>();
                if (mismatched.Count > 0) problems.Add("size mismatch for " + string.Join("; ", mismatched));
                if (strict && missing.Count > 0) problems.Add("missing keys: " + Summarize(missing));
                if (strict && unexpected.Count > 0) problems.Add("unexpected keys: " + Summarize(unexpected));
                if (problems.Count > 0)
                    throw new ArgumentException($"Error(s) in loading state_dict for {GetType().Name}: " + string.Join(". ", problems));

                using (no_grad())
                    foreach (var (k, t) in own)
                        if (source.TryGetValue(k, out var s))
                            t.copy_(s);
                return (missing, unexpected);
            }

            /// <summary>The first keys of a long list, and how many more: a whole model's keys make an unreadable message.</summary>
            private static string Summarize(IReadOnlyList<string> keys) =>
                keys.Count <= 12 ? string.Join(", ", keys) : string.Join(", ", keys.Take(12)) + $", … ({keys.Count - 12} more)";

            // ------------------------------------------------------ modes and devices
            public virtual Module train(bool mode = true)
            {
                training = mode;
                foreach (var m in _modules.Values) m.train(mode);
                return this;
            }
            public Module eval() => train(false);

            public void apply(Action<Module> fn)
            {
                foreach (var m in _modules.Values) m.apply(fn);
                fn(this);
            }

            /// <summary>Moves parameters and buffers; a dtype applies to floating-point tensors only.</summary>
            public Module to(Device? device, ScalarType? dtype = null)
            {
                using var _ = no_grad();
                foreach (var (_, m) in named_modules())
                {
                    foreach (var p in m._parameters.Values) if (p != null) Move(p, device, dtype);
                    foreach (var b in m._buffers.Values) if (b != null) Move(b, device, dtype);
                }
                return this;
            }
            public Module to(ScalarType dtype) => to(null, dtype);

            private static void Move(Tensor t, Device? device, ScalarType? dtype)
            {
                var dt = dtype != null && t.dtype.IsFloatingPoint() ? dtype : null;
                using var moved = t.to(device, dt);
                t.set_data(moved);
            }

            /// <summary>Stores 4-D parameters in channels-last layout (NHWC), which oneDNN and cuDNN prefer.</summary>
            public Module to_channels_last()
            {
                using var _ = no_grad();
                foreach (var p in parameters())
                    if (p.dim() == 4)
                    {
                        using var cl = p.contiguous_channels_last();
                        p.set_data(cl);
                    }
                return this;
            }

            /// <summary>Clears gradients; set_to_none frees them (PyTorch's default since 2.0).</summary>
            public void zero_grad(bool set_to_none = true)
            {
                foreach (var p in parameters())
                {
                    if (set_to_none) { p.grad = null; continue; }
                    using var g = p.grad;
                    g?.zero_();
                }
            }

            public void Dispose()
            {
                if (_disposed) return;
                _disposed = true;
                foreach (var m in _modules.Values) m.Dispose();
                foreach (var p in _parameters.Values) p?.Dispose();
                foreach (var b in _buffers.Values) b?.Dispose();
                GC.SuppressFinalize(this);
            }
        }

        /// <summary>A module with a typed forward.</summary>
        public abstract class Module<T, TResult> : Module
        {
            protected Module(string name) : base(name) { }
            public abstract TResult forward(T input);
            public TResult call(T input) => forward(input);
        }
    }
}
