using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Inference;

/// <summary>How the person meets the new background.</summary>
public enum BlendMode
{
    /// <summary>fg·alpha + bg·(1−alpha).</summary>
    Alpha,
    /// <summary>Gradient-domain compositing in a band around the person's outline (<see cref="PoissonBlend"/>).</summary>
    Poisson,
}

/// <summary>Settings of <see cref="PoissonBlend"/>.</summary>
public sealed record PoissonOptions
{
    /// <summary>
    /// Half-width of the band in pixels: the band is every pixel within this many pixels (a square window)
    /// of the outline. null picks about 1% of the short side, at least 2.
    /// </summary>
    public int? BandRadius { get; init; }

    /// <summary>The alpha level that is the outline: pixels at or above it are the person.</summary>
    public double Threshold { get; init; } = 0.5;

    /// <summary>The most conjugate-gradient iterations per frame.</summary>
    public int MaxIterations { get; init; } = 200;

    /// <summary>Stop when the root-mean-square residual per band pixel and channel falls below this (colour units, [0,1]).</summary>
    public double Tolerance { get; init; } = 5e-5;

    /// <summary>
    /// Weight of a screening term ε·|u − alpha composite|² added to the Poisson energy: it keeps the system
    /// definite when a band touches no fixed pixel; small enough to change nothing visible. 0 is the pure equation.
    /// </summary>
    public double Screening { get; init; } = 1e-4;

    internal PoissonOptions Validate()
    {
        if (BandRadius is int r && (r < 1 || r > 500)) throw new UserException($"Poisson band radius {r} (--blend-band) must lie in [1, 500] pixels");
        if (!(Threshold > 0 && Threshold < 1)) throw new UserException($"Poisson threshold {Threshold} must lie in (0, 1)");
        if (MaxIterations < 0 || MaxIterations > 100_000) throw new UserException($"Poisson iterations {MaxIterations} must lie in [0, 100000]");
        if (!(Tolerance >= 0)) throw new UserException($"Poisson tolerance {Tolerance} must be 0 or more");
        if (!(Screening >= 0 && Screening <= 1)) throw new UserException($"Poisson screening {Screening} must lie in [0, 1]");
        return this;
    }

    /// <summary>The default band radius for a frame: about 1% of the short side, at least 2.</summary>
    public static int AutoBandRadius(long height, long width) => (int)Math.Max(2, Math.Round(Math.Min(height, width) * 0.01));
}

/// <summary>What one Poisson composite did: band pixels (over the batch), CG iterations and the final RMS residual.</summary>
public sealed record PoissonReport(long BandPixels, int Iterations, double Residual);

/// <summary>
/// Gradient-domain (Poisson) compositing of a person over a new background. The outline is the alpha = 0.5
/// level; the band is every pixel within BandRadius of it. Outside the band the result is the alpha composite
/// (the photo inside the person, the new background outside). In the band it solves the Poisson equation
/// Δu = div v with Dirichlet values from the alpha composite around the band, where the guidance field on the
/// edge between neighbours p and q is v_pq = ā·(fg_p − fg_q) + (1 − ā)·(bg_p − bg_q), ā the mean alpha of p and q:
/// the photo's gradients on the person, the background's off it. The colour step that alpha blending leaves at
/// the outline (the term (fg − bg)·∇alpha) is thereby spread smoothly over the band. Image borders are Neumann.
/// Solved per channel by conjugate gradients over the band pixels only (gathered into a compact vector), started
/// from the composite with the mask box-averaged over the band, which is the exact answer when fg − bg is constant.
/// </summary>
public static class PoissonBlend
{
    /// <summary>The Poisson composite: fg, bg [N,3,H,W] in [0,1] and alpha [N,1,H,W] in, [N,3,H,W] in [0,1] out.</summary>
    public static Tensor Composite(Tensor fg, Tensor bg, Tensor alpha, PoissonOptions? options = null) =>
        CompositeWithReport(fg, bg, alpha, options, out _);

    /// <summary><see cref="Composite"/>, also saying how big the band was and how the solver went.</summary>
    public static Tensor CompositeWithReport(Tensor fg, Tensor bg, Tensor alpha, PoissonOptions? options, out PoissonReport report)
    {
        CheckShapes(fg, bg, alpha);
        var o = (options ?? new PoissonOptions()).Validate();
        using var scope = NewDisposeScope();
        using var grad = no_grad();
        var f = fg.to(ScalarType.Float32);
        var b = bg.to(ScalarType.Float32);
        var a = alpha.to(ScalarType.Float32);
        var outp = Matter.Composite(f, b, a).contiguous();
        long h = fg.size(2), w = fg.size(3);
        var (band, smooth) = Band(a, o.BandRadius ?? PoissonOptions.AutoBandRadius(h, w), o.Threshold);
        long m = band.size(0);
        if (m == 0)
        {
            report = new PoissonReport(0, 0, 0);
            return outp.clamp(HeldScalars.Zero, HeldScalars.One).MoveToOuterDisposeScope();
        }
        using var system = BandSystem.Build(band, f, b, a, smooth, o.Screening);
        var (x, iterations, residual) = system.Solve(o.MaxIterations, o.Tolerance);
        outp.view(-1).index_put_(x.flatten(), system.ChannelIndex.flatten());
        report = new PoissonReport(m, iterations, residual);
        return outp.clamp_(HeldScalars.Zero, HeldScalars.One).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The seam error of a composite [N,3,H,W]: the mean, over every pair of 4-neighbours p, q that the outline
    /// separates (one has alpha ≥ threshold, the other not) and over the three channels, of
    /// |(u_q − u_p) − (ā·(fg_q − fg_p) + (1 − ā)·(bg_q − bg_p))|, ā = (alpha_p + alpha_q)/2: how far the composite's
    /// step across the outline is from the photo's gradient on the person and the background's off it. A pasted
    /// edge scores the colour jump |fg − bg|; 0 is seamless. Returns 0 when there is no outline.
    /// </summary>
    public static double SeamError(Tensor composite, Tensor fg, Tensor bg, Tensor alpha, double threshold = 0.5)
    {
        CheckShapes(fg, bg, alpha);
        using var scope = NewDisposeScope();
        using var grad = no_grad();
        using var level = threshold.ToScalar();
        using Scalar half = 0.5.ToScalar(), channels = fg.size(1).ToScalar();
        var mask = alpha.ge(level);
        Tensor sum = zeros(1, ScalarType.Float64), count = zeros(1, ScalarType.Float64);
        foreach (var dim in new[] { 2, 3 })
        {
            long n = alpha.size(dim) - 1;
            if (n <= 0) continue;
            Tensor Step(Tensor t) => (t.narrow(dim, 1, n) - t.narrow(dim, 0, n)).to(ScalarType.Float64);
            var seam = mask.narrow(dim, 1, n).not_equal(mask.narrow(dim, 0, n)).to(ScalarType.Float64);
            var mean = alpha.narrow(dim, 1, n).add(alpha.narrow(dim, 0, n), HeldScalars.IntegralOne).mul_(half).to(ScalarType.Float64);
            var expected = (Step(fg) * mean).PlusInPlace(Step(bg) * mean.neg().PlusInPlace(HeldScalars.One));
            sum.PlusInPlace(((Step(composite) - expected).abs() * seam).sum());
            count.PlusInPlace(seam.sum().mul(channels));
        }
        double c = count.item<double>();
        return c == 0 ? 0 : sum.item<double>() / c;
    }

    private static void CheckShapes(Tensor fg, Tensor bg, Tensor alpha)
    {
        string S(Tensor t) => $"[{string.Join(",", t.shape)}]";
        if (fg.dim() != 4 || fg.size(1) != 3 || !bg.shape.SequenceEqual(fg.shape))
            throw new ArgumentException($"fg {S(fg)} and bg {S(bg)} must both be [N,3,H,W] of one size");
        if (alpha.dim() != 4 || alpha.size(0) != fg.size(0) || alpha.size(1) != 1 || alpha.size(2) != fg.size(2) || alpha.size(3) != fg.size(3))
            throw new ArgumentException($"alpha {S(alpha)} must be [N,1,H,W] with the size of fg {S(fg)}");
    }

    /// <summary>
    /// The band's pixels as linear indices into N·H·W (ascending), and the hard mask box-averaged over the
    /// (2r+1)² window ([N,1,H,W]): a pixel is in the band when its window holds both person and background.
    /// </summary>
    internal static (Tensor Band, Tensor Smooth) Band(Tensor alpha, int radius, double threshold)
    {
        using var scope = NewDisposeScope();
        using var level = threshold.ToScalar();
        var mask = alpha.ge(level).to(ScalarType.Float32);
        // Counts are whole numbers below 2^24, exact in float32.
        var person = GuidedFilter.BoxSum(GuidedFilter.BoxSum(mask, 2, radius), 3, radius);
        using var onesH = ones(new[] { 1L, 1, alpha.size(2), 1 }, ScalarType.Float32, alpha.device);
        using var onesW = ones(new[] { 1L, 1, 1, alpha.size(3) }, ScalarType.Float32, alpha.device);
        var count = GuidedFilter.BoxSum(onesH, 2, radius) * GuidedFilter.BoxSum(onesW, 3, radius);
        var inBand = person.gt(HeldScalars.Zero).logical_and_(person.lt(count));
        var band = inBand.flatten().nonzero().squeeze(1);
        var smooth = person / count;
        return (band.MoveToOuterDisposeScope(), smooth.MoveToOuterDisposeScope());
    }
}
