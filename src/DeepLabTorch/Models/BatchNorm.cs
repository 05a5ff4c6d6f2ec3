using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DeepLabTorch.Models;

/// <summary>
/// BatchNorm2d with the same state and numerics as TorchSharp's, minus a use-after-free: TorchSharp's
/// forward counts batches with <c>num_batches_tracked.add_(1)</c>, whose implicit Scalar temporaries are
/// dead once their handles are read, so a garbage collection during the native call (the data loader's
/// workers allocate constantly) lets the finalizer free them mid-call. Training then fails at random
/// ("alpha must not be a floating point number", "Scalar::toLong"). Here the counter is bumped with a
/// Scalar held by a static field, which no collection can finalize.
/// </summary>
internal sealed class BatchNorm2d : TorchSharp.Modules.BatchNorm
{
    private static readonly Scalar One = 1L.ToScalar();

    public BatchNorm2d(long numFeatures, double eps = 1e-5, double momentum = 0.1)
        : base(numFeatures, eps, momentum, affine: true, track_running_stats: true, device: null, dtype: null, name: nameof(BatchNorm2d))
    {
    }

    protected override void ValidateInputDimensions(Tensor input)
    {
        if (input.ndim != 4) throw new ArgumentException($"expected 4D input, but got {input.ndim}D input.");
    }

    /// <summary>
    /// True once BatchNormFolding has moved this layer's affine map into the conv before it: forward is
    /// then the identity (inference only).
    /// </summary>
    public bool Folded { get; private set; }

    /// <summary>
    /// Makes forward the identity and resets the state to the identity transform, so that a state_dict
    /// taken from the folded model still describes what it computes.
    /// </summary>
    internal void MarkFolded()
    {
        using (no_grad())
        {
            weight?.fill_(One);
            bias?.zero_();
            running_mean?.zero_();
            using var v = (1.0 - eps).ToScalar();
            running_var?.fill_(v);
        }
        Folded = true;
    }

    /// <summary>
    /// With --sync-bn on several processes: normalises over the global batch of all processes while training
    /// (implemented by Distributed/SyncBatchNorm). Null: the local batch, as TorchSharp's BatchNorm2d.
    /// </summary>
    public IBatchNormSync? Sync { get; set; }

    public override Tensor forward(Tensor input)
    {
        ValidateInputDimensions(input);
        if (Folded)
        {
            if (training) throw new InvalidOperationException("a BatchNorm folded into its convolution is for inference only; load the model again to train it");
            // A new handle on the same storage: callers dispose the input and the output separately.
            return input.alias();
        }
        double factor = momentum ?? 0.0;
        if (training && track_running_stats && num_batches_tracked is not null)
        {
            num_batches_tracked.add_(One, One);
            if (momentum is null) factor = 1.0 / num_batches_tracked.item<long>();
        }
        if (training && Sync is { } sync)
            return sync.Normalize(input, weight!, bias!, running_mean, running_var, factor, eps);
        bool useBatchStats = training || (running_mean is null && running_var is null);
        bool passStats = !training || track_running_stats;
        return F.batch_norm(input, passStats ? running_mean : null, passStats ? running_var : null, weight, bias, useBatchStats, factor, eps);
    }
}

/// <summary>
/// The hook through which a BatchNorm2d normalises over more than its own batch while training: Models declares
/// it, Distributed implements it (statistics all-reduced over the processes), so Models knows nothing of MPI.
/// </summary>
internal interface IBatchNormSync
{
    /// <summary>batch_norm in training mode over the global batch; updates the running statistics with <paramref name="momentum"/>.</summary>
    Tensor Normalize(Tensor input, Tensor weight, Tensor bias, Tensor? runningMean, Tensor? runningVar, double momentum, double eps);
}
