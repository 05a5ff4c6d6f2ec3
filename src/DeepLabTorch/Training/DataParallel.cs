using DeepLabTorch.Distributed;
using DeepLabTorch.Models;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Training;

/// <summary>What the processes agreed on after a training step.</summary>
internal readonly record struct StepAgreement(double MeanLoss, long Images, bool Stop, double Seconds);

/// <summary>
/// The trainer's side of data parallelism, so that the epoch loop keeps one code path: rank 0's
/// weights and buffers copied to every rank at the start, --sync-bn switched on, gradients averaged
/// after backward, and one small all-reduce per step through which the ranks agree on the logged loss,
/// the image count, the training time (for --time-budget and time-based schedules) and whether any of
/// them was asked to stop (a signal). Agreeing matters: a rank that stopped alone would leave the
/// others waiting in a collective for ever. On one process every call is a no-op that returns its input.
/// </summary>
internal sealed class DataParallel : IDisposable
{
    private GradientAverager? _gradients;
    private long _seed;

    public DataParallel(ProcessGroup group) => Group = group;

    public ProcessGroup Group { get; }
    public bool IsDistributed => Group.IsDistributed;
    public int Size => Group.Size;
    public GradientAverager? Gradients => _gradients;

    /// <summary>Copies rank 0's parameters and buffers to every rank, turns on --sync-bn, and prepares the gradient buckets.</summary>
    public void Attach(SegmentationModel model, bool syncBn, long seed, ILogger log)
    {
        _seed = seed;
        if (!IsDistributed) return;
        using (no_grad())
        {
            foreach (var (_, p) in model.named_parameters()) Group.Broadcast(p);
            foreach (var (_, b) in model.named_buffers()) Group.Broadcast(b);
        }
        if (syncBn)
        {
            var n = SyncBatchNorm.Enable(model, Group);
            log.LogInformation("--sync-bn: {Layers} BatchNorm layers normalise over the global batch of {Processes} processes", n, Size);
        }
        _gradients = new GradientAverager(model.parameters(), Group);
        var mb = _gradients.TotalBytes / 1e6;
        log.LogInformation("data parallel: {Group}; gradients of {Tensors} tensors ({Megabytes:0.0} MB) averaged in {Buckets} bucket(s) of up to {BucketMiB} MiB",
            Group.Description, _gradients.Parameters, mb, _gradients.BucketBytes.Count, GradientAverager.DefaultBucketBytes >> 20);
    }

    /// <summary>
    /// Before each step on several processes: libtorch's generator (dropout) is seeded from the run's
    /// seed, the step and the rank. Each rank then draws its own masks, not a copy of rank 0's, and the
    /// draws are a function of the step alone, so a resumed run repeats them (a checkpoint holds rank 0's
    /// generator state only). One process keeps its single stream, restored from the checkpoint.
    /// </summary>
    public void BeforeStep(long step)
    {
        if (!IsDistributed) return;
        var z = (ulong)_seed * 0x9E3779B97F4A7C15UL ^ (ulong)step * 0xBF58476D1CE4E5B9UL ^ (ulong)Group.Rank * 0x94D049BB133111EBUL;
        z = (z ^ (z >> 31)) * 0xD6E8FEB86659FD93UL;
        manual_seed((long)((z ^ (z >> 32)) & 0x7FFF_FFFF_FFFF_FFFFUL));
    }

    /// <summary>Averages the gradients over the ranks (call after backward, before the optimizer step).</summary>
    public void AfterBackward() => _gradients?.Average();

    /// <summary>One all-reduce of [loss, images, stop, seconds]: the mean loss, the images of all ranks, whether any rank stops, and the mean clock.</summary>
    public StepAgreement Agree(double loss, long images, bool stop, double seconds)
    {
        if (!IsDistributed) return new StepAgreement(loss, images, stop, seconds);
        Span<double> v = stackalloc double[] { loss, images, stop ? 1 : 0, seconds };
        Group.AllReduceSum(v);
        return new StepAgreement(v[0] / Size, (long)Math.Round(v[1]), v[2] > 0, v[3] / Size);
    }

    /// <summary>Whether any rank wants to stop (a collective: every rank must call it at the same point).</summary>
    public bool AnyStops(bool stop)
    {
        if (!IsDistributed) return stop;
        Span<long> v = stackalloc long[] { stop ? 1 : 0 };
        Group.AllReduceSum(v);
        return v[0] > 0;
    }

    /// <summary>Sums a confusion matrix's counts (and any trailing totals) over the ranks, in place.</summary>
    public void SumCounts(long[] counts)
    {
        if (IsDistributed) Group.AllReduceSum(counts);
    }

    public void Dispose() => _gradients?.Dispose();
}
