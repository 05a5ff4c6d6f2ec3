using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Training;

/// <summary>
/// Segmentation losses with the reference's normalisation: the cross-entropy is averaged over the
/// non-ignored pixels (weighted by class weights when given) and then, with batchAverage (the
/// reference's default), divided once more by the batch size N.
/// Data-parallel training divides by the global batch (processes × N), so that the averaged
/// gradients of P processes with batch N are those of one process with batch P × N.
/// Every Scalar is a named local disposed at the end of its method: TorchSharp's implicit Scalar
/// temporaries can be finalized during the native call when the loader's threads trigger a collection.
/// </summary>
internal static class Losses
{
    public static readonly string[] Types = { "ce", "focal", "dice", "ohem" };

    /// <summary>logits [N,C,H,W], target [N,H,W] int64 with ignoreIndex marking void.</summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor target, Tensor? weight = null, long ignoreIndex = 255, bool batchAverage = true, int processes = 1)
    {
        var n = logits.size(0) * processes;
        using var scope = NewDisposeScope();
        var loss = nn.functional.cross_entropy(logits, target, weight, ignoreIndex);
        using var batch = ((double)n).ToScalar();
        if (batchAverage) loss = loss.div(batch);
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The reference focal loss: logpt = -CE (the batch-mean cross-entropy above, not per pixel),
    /// pt = exp(logpt), loss = -(1 - pt)^gamma * alpha * logpt, then / N with batchAverage.
    /// With perPixel the modulation is applied to every pixel's CE before averaging (Lin et al.).
    /// </summary>
    public static Tensor Focal(Tensor logits, Tensor target, Tensor? weight = null, long ignoreIndex = 255, double gamma = 2, double alpha = 0.5,
        bool batchAverage = true, bool perPixel = false, int processes = 1)
    {
        var n = logits.size(0) * processes;
        using var scope = NewDisposeScope();
        using Scalar one = 1.0.ToScalar(), zero = 0.0.ToScalar(), g = gamma.ToScalar(), a = alpha.ToScalar(), ignore = ignoreIndex.ToScalar(), batch = ((double)n).ToScalar();
        Tensor loss;
        if (!perPixel)
        {
            var logpt = nn.functional.cross_entropy(logits, target, weight, ignoreIndex).neg();
            var pt = logpt.exp();
            loss = pt.neg().Plus(one).pow(g).mul(logpt.mul(a)).neg();
        }
        else
        {
            var ce = nn.functional.cross_entropy(logits, target, weight, ignoreIndex, nn.Reduction.None);
            var valid = target.ne(ignore);
            var pt = ce.neg().exp();
            var per = pt.neg().Plus(one).pow(g).mul(ce).mul(a);
            var count = valid.to(ScalarType.Float32).sum().clamp(min: one);
            loss = per.masked_fill(valid.logical_not(), zero).sum().div(count);
        }
        if (batchAverage) loss = loss.div(batch);
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Soft dice loss for the binary (foreground/background) case: logits [N,2,H,W] (softmax, channel 1
    /// is foreground) or [N,1,H,W] (sigmoid); target [N,H,W] in {0,1} with ignoreIndex void pixels left out.
    /// loss = 1 - (2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth), over the whole batch.
    /// </summary>
    public static Tensor Dice(Tensor logits, Tensor target, long ignoreIndex = 255, double smooth = 1)
    {
        var c = logits.size(1);
        if (c != 1 && c != 2) throw new UserException($"the dice loss is for binary segmentation (1 or 2 output channels), the model has {c}");
        using var scope = NewDisposeScope();
        using Scalar one = 1.0.ToScalar(), two = 2.0.ToScalar(), zero = 0L.ToScalar(), sm = smooth.ToScalar(), ignore = ignoreIndex.ToScalar();
        var p = c == 2 ? nn.functional.softmax(logits, 1).select(1, 1) : logits.select(1, 0).sigmoid();
        var valid = target.ne(ignore);
        var t = target.gt(zero).logical_and(valid).to(p.dtype);
        var v = valid.to(p.dtype);
        p = p.mul(v);
        var inter = p.mul(t).sum();
        var denom = p.sum().Plus(t.sum()).Plus(sm);
        var loss = inter.mul(two).Plus(sm).div(denom).neg().Plus(one);
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Online hard example mining cross-entropy, as the face-parsing references train: the per-pixel
    /// cross-entropy (void pixels count as 0), and the mean of those above -ln(threshold) (the pixels whose
    /// true class gets a probability below threshold), unless fewer than minKept + 1 are: then the mean of
    /// the minKept largest. minKept defaults to 1/16 of the batch's pixels, as the references set it for
    /// their crops. Not divided by the batch size (the references do not).
    /// </summary>
    public static Tensor Ohem(Tensor logits, Tensor target, double threshold = 0.7, long? minKept = null, Tensor? weight = null, long ignoreIndex = 255)
    {
        if (!(threshold > 0 && threshold < 1)) throw new UserException($"the OHEM threshold is a probability in (0, 1), got {threshold}");
        using var scope = NewDisposeScope();
        var loss = nn.functional.cross_entropy(logits, target, weight, ignoreIndex, nn.Reduction.None).flatten();
        var count = loss.size(0);
        var keep = Math.Clamp(minKept ?? count / 16, 1, Math.Max(1, count - 1));
        using var limit = (-Math.Log(threshold)).ToScalar();
        // The (keep + 1)-th largest decides, as the references index their descending sort at keep.
        var top = loss.topk((int)Math.Min(keep + 1, count)).values;
        var decider = top[top.size(0) - 1];
        var hard = loss.gt(limit);
        Tensor result = decider.gt(limit).item<bool>() ? loss.masked_select(hard).mean() : top.narrow(0, 0, keep).mean();
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>The loss function for a --loss-type name; processes: data-parallel processes (the batch average is over the global batch).</summary>
    public static Func<Tensor, Tensor, Tensor> Build(string type, Tensor? weight, long ignoreIndex = 255, bool batchAverage = true, int processes = 1,
        double ohemThreshold = 0.7, long? ohemMinKept = null) => type switch
    {
        "ce" => (x, y) => CrossEntropy(x, y, weight, ignoreIndex, batchAverage, processes),
        "focal" => (x, y) => Focal(x, y, weight, ignoreIndex, 2, 0.5, batchAverage, processes: processes),
        "dice" => (x, y) => Dice(x, y, ignoreIndex),
        "ohem" => (x, y) => Ohem(x, y, ohemThreshold, ohemMinKept, weight, ignoreIndex),
        _ => throw new UserException($"unknown loss type '{type}' (expected ce, focal, dice or ohem)"),
    };
}
