using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DeepLabTorch.Inference;

/// <summary>How the person mask becomes an alpha matte.</summary>
internal sealed record MatteOptions
{
    /// <summary>The class that is the person: null picks 1 for a 2-class (portrait) model and 15 (VOC person) otherwise.</summary>
    public int? PersonClass { get; init; }

    /// <summary>
    /// Several classes that together are the person, their probabilities summed (a face parsing's skin, hair, neck,
    /// ...); when set, it wins over <see cref="PersonClass"/>.
    /// </summary>
    public IReadOnlyList<int>? PersonClasses { get; init; }

    /// <summary>Guided-filter radius in pixels; 0 turns edge refinement off; null picks about 1.5% of the short side.</summary>
    public int? EdgeRadius { get; init; }

    /// <summary>Guided-filter regularisation on a [0,1] gray guide: larger is smoother, smaller follows image edges more.</summary>
    public double EdgeEps { get; init; } = 1e-3;

    /// <summary>Temporal smoothing for video: alpha_t = s·alpha_{t−1} + (1−s)·alpha_now. 0 is off.</summary>
    public double Smoothing { get; init; }

    /// <summary>How the person meets the background: alpha blending, or Poisson (gradient-domain) blending in a band around the outline.</summary>
    public BlendMode Blend { get; init; } = BlendMode.Alpha;

    /// <summary>Settings of the Poisson blend (null: the defaults); used when <see cref="Blend"/> is Poisson.</summary>
    public PoissonOptions? Poisson { get; init; }

    public MatteOptions Validate()
    {
        if (!Enum.IsDefined(Blend)) throw new UserException($"blend mode {(int)Blend} is neither alpha nor poisson");
        Poisson?.Validate();
        if (PersonClass is int c && c < 0) throw new UserException($"--person-class {c} must be a class index (0 or more)");
        if (PersonClasses is { } cs && (cs.Count == 0 || cs.Any(k => k < 0))) throw new UserException("--person-class: give one or more class indices (0 or more)");
        if (EdgeRadius is int r && (r < 0 || r > 1000)) throw new UserException($"edge radius {r} must lie in [0, 1000]");
        if (!(EdgeEps > 0)) throw new UserException($"edge eps {EdgeEps} must be positive");
        if (!(Smoothing >= 0 && Smoothing < 1)) throw new UserException($"smoothing {Smoothing} must lie in [0, 1)");
        return this;
    }

    /// <summary>The person class for a model with this many classes; a UserException when it does not exist.</summary>
    public int ResolvePersonClass(long numClasses)
    {
        int cls = PersonClass ?? Data.ClassNames.PersonIndex(numClasses); // one-channel model: the logit is the person's
        if (cls >= numClasses)
            throw new UserException($"the person class {cls} does not exist in a {numClasses}-class model; pass --person-class");
        return cls;
    }

    /// <summary>The person's classes for a model with this many classes: PersonClasses, or the one person class.</summary>
    public IReadOnlyList<int> ResolvePersonClasses(long numClasses)
    {
        if (PersonClasses is not { } cs) return new[] { ResolvePersonClass(numClasses) };
        foreach (var k in cs)
            if (k >= numClasses) throw new UserException($"the person class {k} does not exist in a {numClasses}-class model");
        return cs;
    }
}

/// <summary>
/// Background replacement: person probability from the model, edges refined with a guided filter on
/// the image, optional temporal smoothing between frames, then alpha or Poisson blending over a background.
/// One instance per stream (it remembers the previous frame's alpha).
/// </summary>
internal sealed class Matter : IDisposable
{
    private readonly Predictor _predictor;
    private Tensor? _previous;

    public Matter(Predictor predictor, MatteOptions? options = null)
    {
        _predictor = predictor;
        Options = (options ?? new MatteOptions()).Validate();
    }

    public MatteOptions Options { get; }

    /// <summary>softmax(logits)[person] as [N,1,H,W]; for a one-channel model, sigmoid of the logit.</summary>
    public static Tensor PersonProbability(Tensor logits, int personClass) => PersonProbability(logits, new[] { personClass });

    /// <summary>The summed softmax of several classes as [N,1,H,W] (one class: that class's probability).</summary>
    public static Tensor PersonProbability(Tensor logits, IReadOnlyList<int> personClasses)
    {
        using var scope = NewDisposeScope();
        Tensor prob;
        if (logits.size(1) == 1) prob = logits.sigmoid();
        else if (personClasses.Count == 1) prob = F.softmax(logits, 1).narrow(1, personClasses[0], 1);
        else
        {
            using var index = tensor(personClasses.Select(k => (long)k).ToArray(), device: logits.device);
            prob = F.softmax(logits, 1).index_select(1, index).sum(1, keepdim: true).clamp(HeldScalars.Zero, HeldScalars.One);
        }
        return prob.contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>The guided filter of the probability with the image's gray as guide, clamped to [0,1].</summary>
    public static Tensor Refine(Tensor probability, Tensor rgb01, int radius, double eps)
    {
        if (radius == 0) return probability.clone();
        using var scope = NewDisposeScope();
        var q = GuidedFilter.Filter(GuidedFilter.Gray(rgb01), probability, radius, eps).clamp(HeldScalars.Zero, HeldScalars.One);
        return q.MoveToOuterDisposeScope();
    }

    /// <summary>fg·alpha + bg·(1−alpha), all [N,·,H,W].</summary>
    public static Tensor Composite(Tensor fg, Tensor bg, Tensor alpha)
    {
        using var scope = NewDisposeScope();
        var outp = (fg * alpha).PlusInPlace(bg * alpha.neg().PlusInPlace(HeldScalars.One));
        return outp.MoveToOuterDisposeScope();
    }

    /// <summary>The composite this matter's options ask for: <see cref="Composite"/> or <see cref="PoissonBlend.Composite"/>.</summary>
    public Tensor Blend(Tensor fg, Tensor bg, Tensor alpha) =>
        Options.Blend == BlendMode.Poisson ? PoissonBlend.Composite(fg, bg, alpha, Options.Poisson) : Composite(fg, bg, alpha);

    /// <summary>Default guided-filter radius for a frame: about 1.5% of the short side, at least 2.</summary>
    public static int AutoRadius(long height, long width) => (int)Math.Max(2, Math.Round(Math.Min(height, width) * 0.015));

    /// <summary>The refined (and, with Smoothing, time-averaged) alpha [1,1,H,W] for a frame [1,3,H,W] in [0,1].</summary>
    public Tensor Alpha(Tensor rgb01)
    {
        using var scope = NewDisposeScope();
        var logits = _predictor.Logits(RgbTensors.Normalize(rgb01));
        var prob = PersonProbability(logits, Options.ResolvePersonClasses(logits.size(1)));
        long h = rgb01.size(2), w = rgb01.size(3);
        var alpha = Refine(prob, rgb01, Options.EdgeRadius ?? AutoRadius(h, w), Options.EdgeEps);
        if (Options.Smoothing > 0)
        {
            if (_previous is not null && _previous.shape.SequenceEqual(alpha.shape))
                {
                    using Scalar keep = Options.Smoothing.ToScalar(), take = (1 - Options.Smoothing).ToScalar();
                    alpha = _previous.mul(keep).PlusInPlace(alpha.mul(take));
                }
            _previous?.Dispose();
            _previous = alpha.clone().DetachFromDisposeScope();
        }
        return alpha.MoveToOuterDisposeScope();
    }

    /// <summary>One frame end to end: RGB bytes in, composited RGB bytes out.</summary>
    public byte[] Process(byte[] rgb, int height, int width, BackgroundRenderer background)
    {
        using var scope = NewDisposeScope();
        var frame = RgbTensors.FromBytes(rgb, height, width);
        var alpha = Alpha(frame);
        var bg = background.Render(frame);
        return RgbTensors.ToBytes(Blend(frame, bg, alpha));
    }

    /// <summary>Forgets the previous frame (start of a new stream).</summary>
    public void Reset()
    {
        _previous?.Dispose();
        _previous = null;
    }

    public void Dispose() => Reset();
}
