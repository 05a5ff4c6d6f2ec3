using System.Diagnostics;
using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace DeepLabTorch.Distributed;

/// <summary>
/// Averages gradients over the ranks after backward, in buckets: the gradients of several parameters
/// are packed into one flat buffer of about <see cref="DefaultBucketBytes"/>, summed by one all-reduce
/// and scaled by 1/size, and unpacked. Few large messages cost far less than one per parameter (the
/// latency term of each call is paid once per bucket). Buckets follow the reverse registration order,
/// the order backward produces gradients in, as PyTorch's DDP does; the buffers are allocated once.
/// </summary>
internal sealed class GradientAverager : IDisposable
{
    /// <summary>25 MiB, PyTorch DDP's bucket_cap_mb default.</summary>
    public const long DefaultBucketBytes = 25L << 20;

    private sealed record Slot(Parameter Parameter, long Offset, long Count);
    private sealed record Bucket(Tensor Flat, List<Slot> Slots);

    private readonly ProcessGroup _group;
    private readonly List<Bucket> _buckets = new();
    private readonly Scalar _inverseSize;
    private readonly Stopwatch _clock = new();

    public GradientAverager(IEnumerable<Parameter> parameters, ProcessGroup group, long bucketBytes = DefaultBucketBytes)
    {
        if (bucketBytes < 1) throw new ArgumentOutOfRangeException(nameof(bucketBytes), bucketBytes, "a bucket holds at least one byte");
        _group = group;
        _inverseSize = (1.0 / group.Size).ToScalar();
        var pending = new List<Parameter>();
        long bytes = 0;
        foreach (var p in parameters.Where(p => p.requires_grad).Reverse())
        {
            // One bucket holds one dtype on one device; a full bucket is closed before the next parameter.
            if (pending.Count > 0 && (bytes + p.numel() * p.ElementSize > bucketBytes || p.dtype != pending[0].dtype || p.device_type != pending[0].device_type || p.device_index != pending[0].device_index))
            {
                Close(pending);
                pending.Clear();
                bytes = 0;
            }
            pending.Add(p);
            bytes += p.numel() * p.ElementSize;
        }
        if (pending.Count > 0) Close(pending);
    }

    private void Close(List<Parameter> ps)
    {
        var slots = new List<Slot>();
        long offset = 0;
        foreach (var p in ps)
        {
            slots.Add(new Slot(p, offset, p.numel()));
            offset += p.numel();
        }
        var flat = zeros(offset, ps[0].dtype, ps[0].device).DetachFromDisposeScope();
        _buckets.Add(new Bucket(flat, slots));
    }

    /// <summary>The size of each bucket in bytes, in the order they are reduced.</summary>
    public IReadOnlyList<long> BucketBytes => _buckets.Select(b => b.Flat.numel() * b.Flat.ElementSize).ToList();
    public long TotalBytes => BucketBytes.Sum();
    public int Parameters => _buckets.Sum(b => b.Slots.Count);
    /// <summary>Time spent in Average (packing, all-reduce, unpacking), in total and over how many calls.</summary>
    public double Seconds => _clock.Elapsed.TotalSeconds;
    public long Calls { get; private set; }

    /// <summary>Replaces every gradient with its mean over the ranks. A parameter without a gradient contributes zeros and stays without one.</summary>
    public void Average()
    {
        if (!_group.IsDistributed) return;
        _clock.Start();
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            foreach (var b in _buckets)
            {
                var grads = new Tensor?[b.Slots.Count];
                for (var i = 0; i < b.Slots.Count; i++)
                {
                    var s = b.Slots[i];
                    var slice = b.Flat.narrow(0, s.Offset, s.Count);
                    grads[i] = s.Parameter.grad;
                    if (grads[i] is { } g) slice.copy_(g.reshape(-1));
                    else slice.zero_();
                }
                _group.AllReduceSum(b.Flat);
                b.Flat.mul_(_inverseSize);
                for (var i = 0; i < b.Slots.Count; i++)
                    if (grads[i] is { } g) g.copy_(b.Flat.narrow(0, b.Slots[i].Offset, b.Slots[i].Count).view(g.shape));
            }
        }
        _clock.Stop();
        Calls++;
    }

    public void Dispose()
    {
        foreach (var b in _buckets) b.Flat.Dispose();
        _buckets.Clear();
        _inverseSize.Dispose();
    }
}
