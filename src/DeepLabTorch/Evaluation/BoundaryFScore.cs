namespace DeepLabTorch.Evaluation;

/// <summary>Boundary precision, recall and F-measure of one image or a whole split.</summary>
internal sealed record BoundaryScore(double Precision, double Recall, double F, long PredictedBoundary, long TrueBoundary);

/// <summary>
/// Boundary F-score of binary masks (the contour accuracy of matting/portrait benchmarks): a boundary
/// pixel is a foreground pixel with a 4-neighbour inside the image that is background. A predicted
/// boundary pixel is correct when a ground-truth boundary pixel lies within <c>tolerance</c> pixels
/// (Euclidean), and the other way round for recall. F = 2PR / (P + R).
/// Masks are HxW bytes where any non-zero value except <see cref="IgnoreValue"/> is foreground;
/// ignore pixels (255) in the ground truth count as background and are never boundary.
/// Accumulate with <see cref="Update"/> for a split-level score (matched counts summed over images),
/// or call <see cref="Compute"/> for one image.
/// </summary>
internal sealed class BoundaryFScore
{
    public const byte IgnoreValue = 255;

    private long _predMatched, _predTotal, _trueMatched, _trueTotal;
    private double _sumF;
    private int _images;

    public BoundaryFScore(int tolerance = 2)
    {
        if (tolerance < 0) throw new ArgumentOutOfRangeException(nameof(tolerance), "the tolerance must be >= 0 pixels");
        Tolerance = tolerance;
    }

    public int Tolerance { get; }
    public int Images => _images;

    /// <summary>Mean of the per-image F-scores seen so far (NaN before any image).</summary>
    public double MeanF => _images == 0 ? double.NaN : _sumF / _images;

    public BoundaryScore Update(ReadOnlySpan<byte> prediction, ReadOnlySpan<byte> target, int height, int width)
    {
        var s = Match(prediction, target, height, width, Tolerance, out var pm, out var tm);
        _predMatched += pm;
        _predTotal += s.PredictedBoundary;
        _trueMatched += tm;
        _trueTotal += s.TrueBoundary;
        _sumF += s.F;
        _images++;
        return s;
    }

    /// <summary>The split-level score from the summed matched/total boundary counts.</summary>
    public BoundaryScore Total() => Score(_predMatched, _predTotal, _trueMatched, _trueTotal);

    public void Reset()
    {
        _predMatched = _predTotal = _trueMatched = _trueTotal = 0;
        _sumF = 0;
        _images = 0;
    }

    /// <summary>The boundary score of one image.</summary>
    public static BoundaryScore Compute(ReadOnlySpan<byte> prediction, ReadOnlySpan<byte> target, int height, int width, int tolerance = 2) =>
        Match(prediction, target, height, width, tolerance, out _, out _);

    /// <summary>The boundary map of a binary mask: true where a foreground pixel touches background (4-neighbourhood).</summary>
    public static bool[] Boundary(ReadOnlySpan<byte> mask, int height, int width)
    {
        if (height <= 0 || width <= 0 || mask.Length != (long)height * width)
            throw new ArgumentException($"mask has {mask.Length} pixels, expected {height}x{width}");
        var b = new bool[mask.Length];
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                var i = y * width + x;
                if (!Fg(mask[i])) continue;
                b[i] = (x > 0 && !Fg(mask[i - 1])) || (x < width - 1 && !Fg(mask[i + 1]))
                    || (y > 0 && !Fg(mask[i - width])) || (y < height - 1 && !Fg(mask[i + width]));
            }
        }
        return b;
    }

    private static bool Fg(byte v) => v != 0 && v != IgnoreValue;

    private static BoundaryScore Match(ReadOnlySpan<byte> prediction, ReadOnlySpan<byte> target, int height, int width, int tolerance,
        out long predMatched, out long trueMatched)
    {
        if (prediction.Length != target.Length)
            throw new ArgumentException($"prediction has {prediction.Length} pixels but target has {target.Length}");
        var pb = Boundary(prediction, height, width);
        var tb = Boundary(target, height, width);
        predMatched = CountMatched(pb, tb, height, width, tolerance, out var predTotal);
        trueMatched = CountMatched(tb, pb, height, width, tolerance, out var trueTotal);
        return Score(predMatched, predTotal, trueMatched, trueTotal);
    }

    private static BoundaryScore Score(long predMatched, long predTotal, long trueMatched, long trueTotal)
    {
        // Conventions for empty boundaries: nothing to find and nothing found is perfect; one side empty scores 0.
        if (predTotal == 0 && trueTotal == 0) return new BoundaryScore(1, 1, 1, 0, 0);
        var precision = predTotal == 0 ? 0 : (double)predMatched / predTotal;
        var recall = trueTotal == 0 ? 0 : (double)trueMatched / trueTotal;
        var f = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
        return new BoundaryScore(precision, recall, f, predTotal, trueTotal);
    }

    /// <summary>How many set pixels of <paramref name="a"/> have a set pixel of <paramref name="b"/> within the tolerance disk.</summary>
    private static long CountMatched(bool[] a, bool[] b, int height, int width, int tolerance, out long total)
    {
        var offsets = new List<(int dy, int dx)>();
        for (var dy = -tolerance; dy <= tolerance; dy++)
            for (var dx = -tolerance; dx <= tolerance; dx++)
                if (dy * dy + dx * dx <= tolerance * tolerance) offsets.Add((dy, dx));
        long matched = 0;
        total = 0;
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                if (!a[y * width + x]) continue;
                total++;
                foreach (var (dy, dx) in offsets)
                {
                    int yy = y + dy, xx = x + dx;
                    if (yy < 0 || yy >= height || xx < 0 || xx >= width) continue;
                    if (b[yy * width + xx]) { matched++; break; }
                }
            }
        }
        return matched;
    }
}
