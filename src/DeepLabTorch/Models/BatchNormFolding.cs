using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Models;

/// <summary>
/// BatchNorm folded into the convolution before it, for inference only: an eval-mode BatchNorm is a
/// per-channel affine map, so the conv can absorb it and the BatchNorm pass (a full read and write of
/// every activation) disappears. The ONNX exporter folds with the same function.
/// </summary>
internal static class BatchNormFolding
{
    /// <summary>
    /// The weight and bias of a conv that absorbs the eval-mode BatchNorm following it, computed in float64
    /// so that folding adds no rounding of its own: s = γ/√(σ²+ε), W' = W·s (per output channel),
    /// b' = (b − μ)·s + β. Returns new CPU tensors of the given dtype that the caller owns.
    /// </summary>
    public static (Tensor Weight, Tensor Bias) FoldedParameters(Conv2d conv, BatchNorm bn, ScalarType dtype = ScalarType.Float32)
    {
        if (bn.running_mean is null || bn.running_var is null)
            throw new ArgumentException("BatchNorm without running statistics cannot be folded");
        if (conv.weight.size(0) != bn.running_mean.size(0))
            throw new ArgumentException($"conv has {conv.weight.size(0)} output channels, the BatchNorm after it {bn.running_mean.size(0)}");
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var f64 = ScalarType.Float64;
        var mean = bn.running_mean.to(f64, CPU);
        var variance = bn.running_var.to(f64, CPU);
        var gamma = bn.weight is null ? ones_like(mean) : bn.weight.to(f64, CPU);
        var beta = bn.bias is null ? zeros_like(mean) : bn.bias.to(f64, CPU);
        using var eps = bn.eps.ToScalar();
        var scale = gamma / variance.Plus(eps).sqrt();
        var w = conv.weight.to(f64, CPU) * scale.view(-1, 1, 1, 1);
        var b0 = conv.bias is null ? zeros_like(mean) : conv.bias.to(f64, CPU);
        var b = ((b0 - mean) * scale).PlusInPlace(beta);
        return (w.to(dtype).MoveToOuterDisposeScope(), b.to(dtype).MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Folds, in place, every BatchNorm of an eval-mode model into the conv that precedes it. Pairs are
    /// found in registration order: in every module of ours a BatchNorm is registered right after the conv
    /// whose output it normalises (the reference's state_dict order, which the architecture tests pin),
    /// and the folding tests check the logits for each backbone. A BatchNorm that follows anything else
    /// throws rather than being skipped. Returns how many were folded.
    /// </summary>
    /// <remarks>
    /// For inference only: the folded model refuses train mode. Its state_dict still describes the same
    /// function (each conv gains a "bias" entry and each BatchNorm becomes the identity: γ=1, β=0, μ=0,
    /// σ²=1−ε), but a strict load into an unfolded model fails on the extra bias keys, so checkpoints are
    /// to be written from unfolded models.
    /// </remarks>
    public static int Fold(nn.Module model)
    {
        if (model.training) throw new InvalidOperationException("BatchNorm folding needs an eval-mode model (call eval() first)");
        int folded = 0;
        Conv2d? previous = null;
        foreach (var (name, m) in Leaves(model, ""))
        {
            if (m is BatchNorm2d bn)
            {
                if (bn.Folded) { previous = null; continue; }
                if (previous is null) throw new InvalidOperationException($"BatchNorm '{name}' does not follow a convolution and cannot be folded");
                FoldPair(previous, bn);
                folded++;
            }
            else if (m is TorchSharp.Modules.BatchNorm)
            {
                throw new InvalidOperationException($"'{name}' is a TorchSharp BatchNorm, which cannot be marked folded");
            }
            previous = m as Conv2d;
        }
        return folded;
    }

    /// <summary>
    /// Leaf modules depth-first in registration order, as StateDictInOrder walks them (TorchSharp's
    /// named_modules does not reach every nested module here: it stopped at the Xception blocks).
    /// </summary>
    private static IEnumerable<(string Name, nn.Module Module)> Leaves(nn.Module m, string prefix)
    {
        bool any = false;
        foreach (var (n, c) in m.named_children())
        {
            any = true;
            foreach (var leaf in Leaves(c, prefix + n + ".")) yield return leaf;
        }
        if (!any) yield return (prefix.TrimEnd('.'), m);
    }

    /// <summary>Whether any BatchNorm of the model still normalises (for tests and assertions).</summary>
    public static bool HasActiveBatchNorm(nn.Module model) =>
        Leaves(model, "").Select(l => l.Module).Any(m => m is TorchSharp.Modules.BatchNorm and not BatchNorm2d { Folded: true });

    private static void FoldPair(Conv2d conv, BatchNorm2d bn)
    {
        var (w, b) = FoldedParameters(conv, bn, ScalarType.Float64);
        using (w)
        using (b)
        using (no_grad())
        {
            // copy_ keeps the weight's own dtype, device and memory format (the Parameter object stays).
            conv.weight.copy_(w);
            if (conv.bias is null)
                conv.bias = new Parameter(b.to(conv.weight.dtype, conv.weight.device), requires_grad: false);
            else
                conv.bias.copy_(b);
        }
        bn.MarkFolded();
    }
}
