using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DeepLabTorch.Inference;

/// <summary>
/// He et al.'s guided filter (gray guide) over tensors, with O(1)-per-pixel box means built from
/// cumulative sums, so the radius costs nothing. Used to snap a soft person mask to image edges.
/// </summary>
internal static class GuidedFilter
{
    /// <summary>
    /// Mean over the (2r+1)² window around each pixel of x [N,C,H,W], counting only pixels inside the
    /// image (the window shrinks at borders). Computed in float64 so long cumulative sums stay exact enough.
    /// </summary>
    public static Tensor BoxMean(Tensor x, int radius)
    {
        if (x.dim() != 4) throw new ArgumentException($"BoxMean takes [N,C,H,W], got [{string.Join(",", x.shape)}]");
        if (radius < 0) throw new ArgumentOutOfRangeException(nameof(radius), radius, "radius must be non-negative");
        if (radius == 0) return x.clone();
        using var scope = NewDisposeScope();
        var dt = x.dtype;
        var d = x.to(ScalarType.Float64);
        var sum = BoxSum(BoxSum(d, 2, radius), 3, radius);
        long h = x.size(2), w = x.size(3);
        using var onesH = ones(new[] { 1L, 1, h, 1 }, ScalarType.Float64, x.device);
        using var onesW = ones(new[] { 1L, 1, 1, w }, ScalarType.Float64, x.device);
        var count = BoxSum(onesH, 2, radius) * BoxSum(onesW, 3, radius);
        var mean = (sum / count).to(dt);
        return mean.MoveToOuterDisposeScope();
    }

    /// <summary>Sum over [i-r, i+r] ∩ [0, n) along one dim: a zero-padded cumulative sum and one difference.</summary>
    internal static Tensor BoxSum(Tensor x, long dim, int r)
    {
        long n = x.size((int)dim);
        var pads = dim == 3 ? new long[] { r + 1, r } : new long[] { 0, 0, r + 1, r };
        var c = F.pad(x, pads).cumsum(dim);
        return c.narrow(dim, 2L * r + 1, n) - c.narrow(dim, 0, n);
    }

    /// <summary>
    /// Filters p [N,1,H,W] guided by I [N,1,H,W] (both roughly in [0,1]): q = mean(a)·I + mean(b) with
    /// a = cov(I,p)/(var(I)+eps), b = mean(p) − a·mean(I). Small eps keeps more of the guide's edges.
    /// </summary>
    public static Tensor Filter(Tensor guide, Tensor p, int radius, double eps)
    {
        if (guide.dim() != 4 || p.dim() != 4 || guide.size(2) != p.size(2) || guide.size(3) != p.size(3))
            throw new ArgumentException($"guide [{string.Join(",", guide.shape)}] and input [{string.Join(",", p.shape)}] must be [N,C,H,W] of one size");
        if (eps <= 0) throw new ArgumentOutOfRangeException(nameof(eps), eps, "eps must be positive");
        using var scope = NewDisposeScope();
        var meanI = BoxMean(guide, radius);
        var meanP = BoxMean(p, radius);
        var corrIp = BoxMean(guide * p, radius);
        var varI = BoxMean(guide * guide, radius) - meanI * meanI;
        using var epsilon = eps.ToScalar();
        var a = (corrIp - meanI * meanP) / varI.Plus(epsilon);
        var b = meanP - a * meanI;
        var q = (BoxMean(a, radius) * guide).PlusInPlace(BoxMean(b, radius));
        return q.MoveToOuterDisposeScope();
    }

    /// <summary>The gray guide (mean of R, G, B) of an RGB image [N,3,H,W] in [0,1].</summary>
    public static Tensor Gray(Tensor rgb01) => rgb01.mean(new long[] { 1 }, keepdim: true);
}
