using DeepLabTorch.Extensions;
using TorchSharp;

namespace DeepLabTorch.Training;

/// <summary>
/// The reference's per-iteration learning-rate schedule. With T = epoch * itersPerEpoch + i and
/// N = epochs * itersPerEpoch:
/// poly: base * (1 - T/N)^0.9; cos: base/2 * (1 + cos(pi T/N)); step: base * 0.1^(epoch / lrStep).
/// An optional linear warm-up multiplies by T / warmupIters while T &lt; warmupIters; or, with a warm-up start
/// rate, an exponential warm-up as the face-parsing references train.
/// Group 0 (backbone) gets the rate, every further group (ASPP + decoder) HeadMultiplier times it.
/// </summary>
internal sealed class LrScheduler
{
    public static readonly string[] Modes = { "poly", "step", "cos" };

    /// <param name="warmupStartLr">Null: the linear warm-up above. A rate: the face-parsing references' exponential
    /// warm-up from it, lr = start × (base / start)^(T / warmupIters) while T ≤ warmupIters, after which poly and cos
    /// run over the remaining iterations, (T − warmupIters) / (N − warmupIters).</param>
    public LrScheduler(string mode, double baseLr, int epochs, int itersPerEpoch, int lrStep = 0, int warmupIters = 0,
        double power = 0.9, double headMultiplier = 10, double? warmupStartLr = null)
    {
        if (warmupStartLr is { } ws && !(ws > 0 && ws <= baseLr)) throw new UserException($"the warm-up start rate must be above 0 and at most the base rate {baseLr}, got {ws}");
        WarmupStartLr = warmupStartLr;
        if (!Modes.Contains(mode)) throw new UserException($"unknown lr scheduler '{mode}' (expected poly, step or cos)");
        if (mode == "step" && lrStep <= 0) throw new UserException("the step lr scheduler needs --lr-step N (epochs between 10x decays)");
        if (baseLr < 0) throw new UserException($"the learning rate must be >= 0, got {baseLr}");
        if (epochs <= 0 || itersPerEpoch <= 0) throw new ArgumentException("epochs and iterations per epoch must be positive");
        if (warmupIters < 0) throw new UserException("the warm-up length must be >= 0 iterations");
        Mode = mode;
        BaseLr = baseLr;
        Epochs = epochs;
        ItersPerEpoch = itersPerEpoch;
        LrStep = lrStep;
        WarmupIters = warmupIters;
        Power = power;
        HeadMultiplier = headMultiplier;
    }

    public string Mode { get; }
    public double BaseLr { get; }
    public int Epochs { get; }
    public int ItersPerEpoch { get; }
    public int LrStep { get; }
    public int WarmupIters { get; }
    public double? WarmupStartLr { get; }

    /// <summary>The exponential warm-up's rate at iteration t (t ≤ WarmupIters).</summary>
    private double Exponential(double t) => WarmupStartLr!.Value * Math.Pow(BaseLr / WarmupStartLr.Value, t / WarmupIters);

    private bool InExponentialWarmup(long t) => WarmupStartLr is not null && WarmupIters > 0 && t <= WarmupIters;
    public double Power { get; }
    public double HeadMultiplier { get; }
    public long TotalIters => (long)Epochs * ItersPerEpoch;

    /// <summary>The backbone learning rate at iteration i of the given epoch.</summary>
    public double LearningRate(int epoch, int i)
    {
        long t = (long)epoch * ItersPerEpoch + i;
        double n = TotalIters;
        if (InExponentialWarmup(t)) return Exponential(t);
        if (WarmupStartLr is not null && WarmupIters > 0 && n > WarmupIters)
        {
            // After the exponential warm-up the decay spans the iterations that are left.
            t -= WarmupIters;
            n -= WarmupIters;
        }
        var lr = Mode switch
        {
            "cos" => 0.5 * BaseLr * (1 + Math.Cos(t / n * Math.PI)),
            "poly" => BaseLr * Math.Pow(Math.Max(0, 1 - t / n), Power),
            _ => BaseLr * Math.Pow(0.1, epoch / LrStep),
        };
        if (WarmupStartLr is null && WarmupIters > 0 && t < WarmupIters) lr = lr * t / WarmupIters;
        return lr;
    }

    /// <summary>
    /// The rate when progress is measured as a fraction p in [0, 1] of a budget (e.g. wall time) instead
    /// of iterations: poly and cos use p for T/N; step still decays by epoch; warm-up still counts iterations.
    /// </summary>
    public double LearningRateAtProgress(double p, int epoch, long iteration)
    {
        p = Math.Clamp(p, 0, 1);
        if (InExponentialWarmup(iteration)) return Exponential(iteration);
        var lr = Mode switch
        {
            "cos" => 0.5 * BaseLr * (1 + Math.Cos(p * Math.PI)),
            "poly" => BaseLr * Math.Pow(1 - p, Power),
            _ => BaseLr * Math.Pow(0.1, epoch / LrStep),
        };
        if (WarmupStartLr is null && WarmupIters > 0 && iteration < WarmupIters) lr = lr * iteration / WarmupIters;
        return lr;
    }

    /// <summary>Sets the optimizer's group rates for iteration i of the epoch; returns the backbone rate.</summary>
    public double Apply(torch.optim.Optimizer optimizer, int epoch, int i) => Set(optimizer, LearningRate(epoch, i));

    /// <summary>Sets the group rates from a backbone rate: the backbone's groups get it, the head's HeadMultiplier times it (SgdFactory marks which are which).</summary>
    public double Set(torch.optim.Optimizer optimizer, double lr)
    {
        var groups = optimizer.ParamGroups.ToList();
        var heads = (optimizer as HeldScalarSgd)?.HeadGroups;
        for (var g = 0; g < groups.Count; g++)
            groups[g].LearningRate = (heads is not null ? heads[g] : g > 0) ? lr * HeadMultiplier : lr;
        return lr;
    }
}
