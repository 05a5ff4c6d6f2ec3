using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Inference;

/// <summary>
/// The discrete Poisson system of <see cref="PoissonBlend"/> over the M band pixels, three channels side by side
/// ([M,3]): for band pixel p with 4-neighbours q (a neighbour beyond the image border is p itself, which makes
/// the border Neumann), (4 + ε)·u_p − Σ_{q in band} u_q = Σ_q v_pq + Σ_{q off band} c_q + ε·c_p, c the alpha
/// composite. Its tensors live in the caller's dispose scope.
/// </summary>
internal sealed class BandSystem : IDisposable
{
    private readonly Tensor _neighbours; // [4·M] compact index of each neighbour; M (a zero row) when off the band
    private readonly Tensor _rhs;        // [M,3]
    private readonly Tensor _start;      // [M,3]
    private readonly Scalar _diagonal;
    private readonly long _m;

    private BandSystem(Tensor neighbours, Tensor rhs, Tensor start, double diagonal, Tensor channelIndex)
    {
        _neighbours = neighbours;
        _rhs = rhs;
        _start = start;
        _diagonal = diagonal.ToScalar();
        _m = rhs.size(0);
        ChannelIndex = channelIndex;
    }

    /// <summary>[M,3]: where each unknown lives in the flattened [N,3,H,W] image.</summary>
    public Tensor ChannelIndex { get; }

    /// <summary>Gathers the band's neighbourhoods from fg, bg, alpha (float32) and the box-averaged mask.</summary>
    public static BandSystem Build(Tensor band, Tensor fg, Tensor bg, Tensor alpha, Tensor smooth, double screening)
    {
        long n = fg.size(0), h = fg.size(2), w = fg.size(3), m = band.size(0);
        var pos = Neighbourhoods(band, h, w);                        // [5,M]: p, left, right, up, down
        using Scalar plane = (h * w).ToScalar(), twoPlanes = (2 * h * w).ToScalar();
        var image = pos.div(plane, rounding_mode: RoundingMode.floor);
        using Scalar three = 3L.ToScalar();
        var offsets = arange(HeldScalars.Zero, three, HeldScalars.IntegralOne, ScalarType.Int64, fg.device).mul_(plane).view(1, 1, 3);
        var flat = pos.Plus(image.mul_(twoPlanes)).unsqueeze(2).Plus(offsets); // [5,M,3]
        var f = fg.take(flat);
        var b = bg.take(flat);
        var a = alpha.take(pos).unsqueeze(2);                         // [5,M,1]
        var composite = (f * a).PlusInPlace(b * a.neg().PlusInPlace(HeldScalars.One));

        // Compact index of each neighbour: its place in the ascending band, or M when it is not a band pixel.
        using Scalar mScalar = m.ToScalar(), last = (m - 1).ToScalar();
        var others = pos.narrow(0, 1, 4);
        var place = searchsorted(band, others).clamp_max_(last);
        var neighbours = place.masked_fill_(band.take(place).not_equal(others), mScalar); // [4,M]
        var off = neighbours.eq(mScalar).unsqueeze(2).to(ScalarType.Float32);

        // Guidance v_pq summed over the four neighbours, plus the fixed neighbours' values.
        using Scalar half = 0.5.ToScalar();
        var self = (F: f.narrow(0, 0, 1), B: b.narrow(0, 0, 1), A: a.narrow(0, 0, 1));
        var mean = a.narrow(0, 1, 4).add(self.A, HeldScalars.IntegralOne).mul_(half);
        var df = self.F - f.narrow(0, 1, 4);
        var db = self.B - b.narrow(0, 1, 4);
        var guidance = df.mul_(mean).PlusInPlace(db.mul_(mean.neg().PlusInPlace(HeldScalars.One)));
        var rhs = guidance.PlusInPlace(composite.narrow(0, 1, 4) * off).sum(dim: 0);
        if (screening > 0)
        {
            using Scalar eps = screening.ToScalar();
            rhs.PlusInPlace(composite.select(0, 0).mul(eps));
        }

        // Start: the composite with the mask box-averaged over the band (a linear ramp across a straight outline).
        var s = smooth.take(pos.select(0, 0)).unsqueeze(1);
        var start = (self.F.squeeze(0) * s).PlusInPlace(self.B.squeeze(0) * s.neg().PlusInPlace(HeldScalars.One));
        return new BandSystem(neighbours.flatten(), rhs, start, 4 + screening, flat.select(0, 0));
    }

    /// <summary>[5,M] linear indices of each band pixel and its left, right, upper and lower neighbour (itself at a border).</summary>
    private static Tensor Neighbourhoods(Tensor band, long h, long w)
    {
        using Scalar width = w.ToScalar(), lastX = (w - 1).ToScalar(), lastY = (h - 1).ToScalar(), height = h.ToScalar();
        var x = band.remainder(width);
        var y = band.div(width, rounding_mode: RoundingMode.floor).remainder_(height);
        var left = band - x.gt(HeldScalars.Zero).to(ScalarType.Int64);
        var right = band.Plus(x.lt(lastX).to(ScalarType.Int64));
        var up = band - y.gt(HeldScalars.Zero).to(ScalarType.Int64).mul_(width);
        var down = band.Plus(y.lt(lastY).to(ScalarType.Int64).mul_(width));
        return stack(new[] { band, left, right, up, down });
    }

    /// <summary>A·u for u held as [M+1,3] with a zero last row: (4+ε)·u_p − Σ of the band neighbours.</summary>
    private Tensor Apply(Tensor extended)
    {
        var neighbourSum = extended.index_select(0, _neighbours).view(4, _m, 3).sum(dim: 0);
        return extended.narrow(0, 0, _m).mul(_diagonal).sub_(neighbourSum);
    }

    /// <summary>
    /// Conjugate gradients, one independent solve per channel (their step sizes are [3] tensors), from the
    /// start guess until the RMS residual is below tolerance or the iterations run out. Returns u [M,3].
    /// </summary>
    public (Tensor U, int Iterations, double Residual) Solve(int maxIterations, double tolerance)
    {
        var u = _start.clone();
        var r = _rhs - Apply(cat(new[] { u, zeros(1, 3, ScalarType.Float32, u.device) }));
        var pExt = cat(new[] { r, zeros(1, 3, ScalarType.Float32, u.device) });
        var p = pExt.narrow(0, 0, _m);
        var rs = (r * r).sum(dim: 0);
        using Scalar tiny = 1e-30.ToScalar();
        double rms = Math.Sqrt(rs.max().item<float>() / _m);
        int it = 0;
        while (rms > tolerance && it < maxIterations)
        {
            using var step = NewDisposeScope();
            var ap = Apply(pExt);
            var stepSize = rs / (p * ap).sum(dim: 0).clamp_min(tiny);
            u.PlusInPlace(p * stepSize);
            r.sub_(ap.mul_(stepSize));
            var rsNext = (r * r).sum(dim: 0);
            p.mul_(rsNext / rs.clamp_min(tiny)).PlusInPlace(r);
            rs.copy_(rsNext);
            rms = Math.Sqrt(rs.max().item<float>() / _m);
            it++;
        }
        return (u, it, rms);
    }

    public void Dispose() => _diagonal.Dispose();
}
