namespace DeepLabTorch.Torch;

/// <summary>
/// Collects every tensor created on this thread while it is the innermost open scope, and frees
/// them when disposed (TorchSharp's NewDisposeScope). Results leave with MoveToOuterDisposeScope
/// or DetachFromDisposeScope.
/// </summary>
public sealed class DisposeScope : IDisposable
{
    [ThreadStatic] private static List<DisposeScope>? _stack;
    private readonly HashSet<torch.Tensor> _tensors = new(ReferenceEqualityComparer.Instance);
    private bool _disposed;

    internal DisposeScope()
    {
        (_stack ??= new List<DisposeScope>()).Add(this);
    }

    /// <summary>The innermost open scope of this thread, or null.</summary>
    internal static DisposeScope? Current => _stack is { Count: > 0 } s ? s[^1] : null;

    internal DisposeScope? Outer
    {
        get
        {
            if (_stack == null) return null;
            int i = _stack.IndexOf(this);
            return i > 0 ? _stack[i - 1] : null;
        }
    }

    public int Count => _tensors.Count;

    internal void Add(torch.Tensor t)
    {
        _tensors.Add(t);
        t.Scope = this;
    }

    internal void Remove(torch.Tensor t)
    {
        _tensors.Remove(t);
        if (ReferenceEquals(t.Scope, this)) t.Scope = null;
    }

    /// <summary>Frees every collected tensor except the ones listed.</summary>
    public void DisposeEverythingBut(params torch.Tensor[] keep)
    {
        foreach (var k in keep) Remove(k);
        foreach (var t in _tensors.ToArray()) t.Dispose();
        _tensors.Clear();
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var t in _tensors.ToArray()) t.Dispose();
        _tensors.Clear();
        _stack?.Remove(this);
    }
}
