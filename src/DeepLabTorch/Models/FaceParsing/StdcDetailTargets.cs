using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DeepLabTorch.Models.FaceParsing;

/// <summary>
/// STDC-Seg's detail guidance ("detail aggregation"): the boundary target made from the label map, and the loss of
/// a detail head's logits against it.
/// <para>
/// Target: a 3×3 Laplacian (8 at the centre, −1 around, zero padding) over the label map, read as numbers (the ignore
/// value 255 included, as the reference does), at strides 1, 2 and 4; each level is a boundary where it exceeds 0.1,
/// the coarse levels nearest-upsampled to the label size; a fixed 1×1 fuse (0.6, 0.3, 0.1) of the three levels, a
/// boundary where it exceeds 0.1. With these weights a pixel is a boundary when the stride-1 or the stride-2 level
/// says so: the stride-4 level alone gives exactly 0.1, which is not above the threshold.
/// </para>
/// <para>
/// Loss: the detail logits, upsampled bilinearly (align_corners) to the label size where they differ, against the
/// target: binary cross-entropy with logits (mean over every pixel) and dice on the sigmoid (smoothing 1, per image,
/// then the batch mean). The reference trains with their sum.
/// </para>
/// </summary>
internal static class StdcDetailTargets
{
    private static readonly Scalar Threshold = 0.1.ToScalar();
    private static readonly Scalar Two = 2.0.ToScalar();

    /// <summary>The Laplacian kernel, row by row.</summary>
    public static IReadOnlyList<float> Laplacian { get; } = [-1f, -1f, -1f, -1f, 8f, -1f, -1f, -1f, -1f];

    /// <summary>The fuse weights of the stride-1, stride-2 and stride-4 levels (the reference's initial values).</summary>
    public static IReadOnlyList<float> FuseWeights { get; } = [0.6f, 0.3f, 0.1f];

    /// <summary>Strides of the Laplacian levels that the fuse combines.</summary>
    public static IReadOnlyList<long> Strides { get; } = [1, 2, 4];

    /// <summary>
    /// The boundary target of a batch of label maps: [N,H,W] (any integer or floating type) → [N,1,H,W] float32 of
    /// 0 and 1, on the labels' device. fuseWeights replaces the fuse's three weights (default FuseWeights).
    /// </summary>
    public static Tensor BoundaryTarget(Tensor labels, IReadOnlyList<float>? fuseWeights = null)
    {
        if (labels.ndim != 3)
            throw new ArgumentException($"the boundary target takes [N,H,W] label maps, got shape [{string.Join(", ", labels.shape)}]", nameof(labels));
        var fuse = fuseWeights ?? FuseWeights;
        if (fuse.Count != Strides.Count)
            throw new ArgumentException($"the fuse takes {Strides.Count} weights, got {fuse.Count}", nameof(fuseWeights));
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var size = new[] { labels.shape[1], labels.shape[2] };
        var g = labels.unsqueeze(1).to(ScalarType.Float32);
        var kernel = tensor(Laplacian.ToArray(), [1, 1, 3, 3], device: labels.device);
        var levels = new List<Tensor>();
        foreach (var stride in Strides)
        {
            // The reference clamps each level at 0 first, which no threshold above 0 can tell apart.
            var edges = F.conv2d(g, kernel, strides: [stride, stride], padding: [1, 1]);
            if (stride != 1) edges = F.interpolate(edges, size, mode: InterpolationMode.Nearest);
            levels.Add(edges.gt(Threshold).to(ScalarType.Float32));
        }
        var weights = tensor(fuse.ToArray(), [1, Strides.Count, 1, 1], device: labels.device);
        var fused = F.conv2d(cat(levels, 1), weights);
        return fused.gt(Threshold).to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The detail loss of one detail head: logits [N,1,h,w] (any resolution), labels [N,H,W]. Returns the BCE and dice
    /// terms (scalars, differentiable in the logits), which the reference adds to the segmentation loss.
    /// </summary>
    public static (Tensor Bce, Tensor Dice) DetailLoss(Tensor logits, Tensor labels, IReadOnlyList<float>? fuseWeights = null)
    {
        if (logits.ndim != 4 || logits.shape[1] != 1)
            throw new ArgumentException($"detail logits are [N,1,h,w], got shape [{string.Join(", ", logits.shape)}]", nameof(logits));
        if (labels.ndim != 3 || labels.shape[0] != logits.shape[0])
            throw new ArgumentException($"labels [N,H,W] for {logits.shape[0]} images, got shape [{string.Join(", ", labels.shape)}]", nameof(labels));
        using var scope = NewDisposeScope();
        var target = BoundaryTarget(labels, fuseWeights).to(logits.dtype);
        var x = logits.shape[2] == labels.shape[1] && logits.shape[3] == labels.shape[2]
            ? logits.alias()
            : F.interpolate(logits, [labels.shape[1], labels.shape[2]], mode: InterpolationMode.Bilinear, align_corners: true);
        var bce = F.binary_cross_entropy_with_logits(x, target);
        var p = x.sigmoid().flatten(1);
        var t = target.flatten(1);
        var intersection = (p * t).sum(1);
        var ratio = intersection.mul(Two).PlusInPlace(HeldScalars.One) / p.sum(1).Plus(t.sum(1)).PlusInPlace(HeldScalars.One);
        var dice = ratio.neg().PlusInPlace(HeldScalars.One).mean();
        return (bce.MoveToOuterDisposeScope(), dice.MoveToOuterDisposeScope());
    }
}
