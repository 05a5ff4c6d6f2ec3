namespace DeepLabTorch.Cli.Bench;

/// <summary>Order statistics for the load benchmarks.</summary>
internal static class Percentiles
{
    /// <summary>
    /// The <paramref name="p"/>-th percentile (0-100) of <paramref name="values"/> by linear interpolation between
    /// the two nearest ranks, as numpy.percentile computes it by default: h = (n - 1) p / 100, then
    /// x[floor h] + (h - floor h)(x[floor h + 1] - x[floor h]) over the sorted values. NaN for no values.
    /// </summary>
    public static double Of(IEnumerable<double> values, double p)
    {
        if (!(p >= 0 && p <= 100)) throw new ArgumentOutOfRangeException(nameof(p), p, "a percentile lies in [0, 100]");
        var sorted = values.ToArray();
        if (sorted.Length == 0) return double.NaN;
        Array.Sort(sorted);
        double h = (sorted.Length - 1) * p / 100.0;
        int lo = (int)Math.Floor(h);
        int hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
    }
}
