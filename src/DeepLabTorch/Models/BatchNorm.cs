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
public sealed class BatchNorm2d : TorchSharp.Modules.BatchNorm
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

    public override Tensor forward(Tensor input)
    {
        ValidateInputDimensions(input);
        double factor = momentum ?? 0.0;
        if (training && track_running_stats && num_batches_tracked is not null)
        {
            num_batches_tracked.add_(One, One);
            if (momentum is null) factor = 1.0 / num_batches_tracked.item<long>();
        }
        bool useBatchStats = training || (running_mean is null && running_var is null);
        bool passStats = !training || track_running_stats;
        return F.batch_norm(input, passStats ? running_mean : null, passStats ? running_var : null, weight, bias, useBatchStats, factor, eps);
    }
}
