namespace DeepLabTorch.Export.Quantization;

/// <summary>
/// What calibration saw of one activation: its smallest and largest value, and (in a second pass, once the
/// largest |x| over all images is known) a histogram of |x| over [0, that maximum]. The range for quantisation
/// comes from these by the chosen method.
/// </summary>
internal sealed class ActivationHistogram
{
    public const int Bins = 2048;

    public float Min { get; private set; } = float.PositiveInfinity;
    public float Max { get; private set; } = float.NegativeInfinity;
    public long[] Counts { get; } = new long[Bins];
    private float _width;

    public float AbsMax => Math.Max(Math.Abs(Min), Math.Abs(Max));

    public void ObserveRange(ReadOnlySpan<float> values)
    {
        float lo = Min, hi = Max;
        foreach (var v in values)
        {
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        Min = lo;
        Max = hi;
    }

    /// <summary>Adds |x| to the histogram, whose range is fixed by the first pass (ObserveRange over every image).</summary>
    public void ObserveHistogram(ReadOnlySpan<float> values)
    {
        if (_width == 0) _width = AbsMax > 0 ? AbsMax / Bins : 1f;
        float inv = 1f / _width;
        foreach (var v in values)
            Counts[Math.Min(Bins - 1, (int)(Math.Abs(v) * inv))]++;
    }

    /// <summary>The range to quantise: [Min, Max], or |x| clipped at the method's threshold T (to [max(Min, −T), min(Max, T)]).</summary>
    public (float Min, float Max) Range(CalibrationMethod method, double percentile)
    {
        if (float.IsInfinity(Min)) throw new InvalidOperationException("no calibration data was observed");
        if (method == CalibrationMethod.MinMax || AbsMax == 0) return (Min, Max);
        int bin = method == CalibrationMethod.Percentile ? PercentileBin(percentile) : EntropyBin(Min >= 0 ? 255 : 128);
        float t = (bin + 1) * _width;
        return (Math.Max(Min, -t), Math.Min(Max, t));
    }

    private int PercentileBin(double percentile)
    {
        long total = Counts.Sum();
        double target = total * percentile / 100.0;
        long run = 0;
        for (int i = 0; i < Bins; i++)
        {
            run += Counts[i];
            if (run >= target) return i;
        }
        return Bins - 1;
    }

    /// <summary>
    /// The last bin to keep that minimises KL(P‖Q): P is the histogram up to that bin with the tail folded into
    /// its last bin, Q is P merged into <paramref name="levels"/> quantisation levels and spread back over the
    /// non-empty bins of each level.
    /// </summary>
    private int EntropyBin(int levels)
    {
        int best = Bins - 1;
        double bestKl = double.PositiveInfinity;
        var p = new double[Bins];
        var q = new double[Bins];
        for (int end = levels; end <= Bins; end++)
        {
            double outliers = 0;
            for (int i = end; i < Bins; i++) outliers += Counts[i];
            for (int i = 0; i < end; i++) p[i] = Counts[i];
            p[end - 1] += outliers;
            Spread(p, end, levels, q);
            double kl = Divergence(p, q, end);
            if (kl < bestKl) { bestKl = kl; best = end - 1; }
        }
        return best;
    }

    /// <summary>Q: the first `end` bins of P merged into `levels` groups, each group's sum spread evenly over its non-empty bins.</summary>
    private static void Spread(double[] p, int end, int levels, double[] q)
    {
        double perLevel = (double)end / levels;
        for (int j = 0; j < levels; j++)
        {
            int start = (int)Math.Floor(j * perLevel), stop = j == levels - 1 ? end : (int)Math.Floor((j + 1) * perLevel);
            double sum = 0;
            int nonEmpty = 0;
            for (int i = start; i < stop; i++)
            {
                sum += p[i];
                if (p[i] != 0) nonEmpty++;
            }
            for (int i = start; i < stop; i++) q[i] = p[i] != 0 ? sum / nonEmpty : 0;
        }
    }

    private static double Divergence(double[] p, double[] q, int end)
    {
        double pSum = 0, qSum = 0;
        for (int i = 0; i < end; i++) { pSum += p[i]; qSum += q[i]; }
        if (pSum == 0 || qSum == 0) return double.PositiveInfinity;
        double kl = 0;
        for (int i = 0; i < end; i++)
        {
            if (p[i] == 0) continue;
            double pi = p[i] / pSum, qi = q[i] / qSum;
            // A bin P has and Q lacks: a large finite penalty, as TensorRT's smoothing gives.
            kl += qi > 0 ? pi * Math.Log(pi / qi) : pi * 20;
        }
        return kl;
    }
}
