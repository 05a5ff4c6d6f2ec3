using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Distributed;

/// <summary>What one synchronized BatchNorm call needs besides its tensor inputs (kept out of the graph's inputs).</summary>
internal sealed record SyncBatchNormArgs(ProcessGroup Group, Tensor? RunningMean, Tensor? RunningVar, double Factor, double Eps);

/// <summary>
/// BatchNorm over the global batch of all ranks, as a custom autograd function.
/// Forward: one all-reduce of each rank's per-channel [sum, count] gives the global mean, and a second
/// one of the per-channel sums of squared deviations from it gives the global (biased) variance. Two
/// passes, because one pass of raw squared sums loses the variance to cancellation in float32 when a
/// channel's mean is large against its spread (the image-pooling branch's BatchNorm sees one value per
/// image, so a handful per channel). Every rank
/// then normalises its own slice and updates its running statistics from the same global numbers, so
/// they stay equal everywhere (unbiased variance with the global count, as PyTorch's SyncBatchNorm).
/// Backward: one all-reduce of the per-channel sums of dy and dy·x̂ gives the input gradient of the
/// global normalisation. The weight and bias gradients are this rank's own sums; the gradient
/// averaging after backward combines them, as for every other parameter.
/// </summary>
internal sealed class SyncBatchNormFunction : autograd.SingleTensorFunction<SyncBatchNormFunction>
{
    private static readonly long[] Reduced = { 0, 2, 3 };

    public override string Name => "SyncBatchNorm";

    /// <summary>
    /// The type the statistics and the normalisation are computed in: float32 for a bfloat16 or half
    /// input (--precision bf16), as libtorch's own BatchNorm accumulates; the input's type otherwise.
    /// </summary>
    private static Tensor InComputeType(Tensor t) =>
        t.dtype is ScalarType.BFloat16 or ScalarType.Float16 ? t.to(ScalarType.Float32) : t.alias();

    /// <summary>vars: input [N,C,H,W], weight [C], bias [C], SyncBatchNormArgs.</summary>
    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var weight = (Tensor)vars[1];
        var bias = (Tensor)vars[2];
        var a = (SyncBatchNormArgs)vars[3];
        var c = x.size(1);
        var shape = new long[] { 1, c, 1, 1 };
        using var scope = NewDisposeScope();
        var input = x;
        x = InComputeType(input);
        // Two passes, as a careful variance is computed: the global mean first, then the squared
        // deviations from it (raw squared sums would cancel when the mean is large against the spread).
        var first = cat(new[] { x.sum(Reduced).to(ScalarType.Float64), tensor(new[] { (double)(x.numel() / c) }).to(x.device) }, 0);
        a.Group.AllReduceSum(first);
        var n = first[c].item<double>();
        if (n < 2) throw new InvalidOperationException($"SyncBatchNorm needs at least 2 values per channel over all processes, got {n}");
        using Scalar invN = (1.0 / n).ToScalar(), eps = a.Eps.ToScalar();
        var mean64 = first.narrow(0, 0, c).mul(invN);
        var meanX = mean64.to(x.dtype);
        var squares = x.sub(meanX.view(shape)).square().sum(Reduced).to(ScalarType.Float64);
        a.Group.AllReduceSum(squares);
        var variance = squares.mul(invN);
        var mean = meanX;
        var invstd = variance.Plus(eps).rsqrt().to(x.dtype);
        var y = x.sub(mean.view(shape)).mul(invstd.mul(weight).view(shape)).PlusInPlace(bias.view(shape)).to(input.dtype);
        if (a.RunningMean is not null && a.RunningVar is not null)
        {
            using Scalar keep = (1 - a.Factor).ToScalar(), take = a.Factor.ToScalar(), unbias = (n / (n - 1)).ToScalar();
            a.RunningMean.mul_(keep).add_(mean64.to(a.RunningMean.dtype), take);
            a.RunningVar.mul_(keep).add_(variance.mul(unbias).to(a.RunningVar.dtype), take);
        }
        // The saved tensors must outlive this scope until the function records them, just after forward returns.
        ctx.save_for_backward(new List<Tensor> { input, weight, mean.MoveToOuterDisposeScope(), invstd.MoveToOuterDisposeScope() });
        ctx.save_data("n", n);
        ctx.save_data("group", a.Group);
        return y.MoveToOuterDisposeScope();
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor dy)
    {
        var n = (double)ctx.get_data("n");
        var group = (ProcessGroup)ctx.get_data("group");
        using var scope = NewDisposeScope();
        var saved = ctx.get_saved_variables();
        var (input, weight, mean, invstd) = (saved[0], saved[1], saved[2], saved[3]);
        var x = InComputeType(input);
        dy = dy.to(x.dtype);
        var c = x.size(1);
        var shape = new long[] { 1, c, 1, 1 };
        var xhat = x.sub(mean.view(shape)).mul(invstd.view(shape));
        var sumDy = dy.sum(Reduced);
        var sumDyXhat = dy.mul(xhat).sum(Reduced);
        var global = cat(new[] { sumDy, sumDyXhat }, 0);
        group.AllReduceSum(global);
        using Scalar invN = (1.0 / n).ToScalar();
        var meanDy = global.narrow(0, 0, c).mul(invN).view(shape);
        var meanDyXhat = global.narrow(0, c, c).mul(invN).view(shape);
        var dx = dy.sub(meanDy).sub(xhat.mul(meanDyXhat)).mul(invstd.mul(weight).view(shape));
        return new List<Tensor> { dx.to(input.dtype).MoveToOuterDisposeScope(), sumDyXhat.MoveToOuterDisposeScope(), sumDy.MoveToOuterDisposeScope(), null! };
    }
}

/// <summary>Turns --sync-bn on for a model: every BatchNorm2d then normalises over the batch of all processes while training.</summary>
internal static class SyncBatchNorm
{
    /// <summary>Sets the group on every BatchNorm2d of the model; returns how many there are. A single-process group changes nothing.</summary>
    public static int Enable(nn.Module model, ProcessGroup group)
    {
        var n = 0;
        foreach (var m in model.modules())
        {
            if (m is Models.BatchNorm2d bn)
            {
                bn.Sync = group.IsDistributed ? new GroupBatchNormSync(group) : null;
                n++;
            }
        }
        return n;
    }
}

/// <summary>The model's batch-norm hook over a process group: the custom autograd function above.</summary>
internal sealed class GroupBatchNormSync(ProcessGroup group) : Models.IBatchNormSync
{
    public ProcessGroup Group => group;

    public Tensor Normalize(Tensor input, Tensor weight, Tensor bias, Tensor? runningMean, Tensor? runningVar, double momentum, double eps) =>
        SyncBatchNormFunction.apply(input, weight, bias, new SyncBatchNormArgs(group, runningMean, runningVar, momentum, eps));
}
