using System.Globalization;
using System.Text;
using DeepLabTorch.Extensions;
using TorchSharp;

namespace DeepLabTorch.Evaluation;

/// <summary>
/// A streaming confusion matrix over a whole split: rows are ground-truth classes, columns predicted
/// classes. Counts accumulate on the tensors' device (one bincount per update), so evaluation never
/// copies predictions to the host. Pixels whose ground truth is the ignore label, or otherwise outside
/// [0, NumClasses), are not counted, as in the reference Evaluator.
/// </summary>
internal sealed class ConfusionMatrix : IDisposable
{
    private torch.Tensor? _counts;        // [C*C] int64 on the device of the first update
    private readonly long[] _host;        // host-side counts (from byte-span updates and merges)

    public ConfusionMatrix(int numClasses, int ignoreIndex = 255)
    {
        if (numClasses < 1 || numClasses > 255)
            throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "the number of classes must be between 1 and 255");
        NumClasses = numClasses;
        IgnoreIndex = ignoreIndex;
        _host = new long[numClasses * numClasses];
    }

    public int NumClasses { get; }
    public int IgnoreIndex { get; }

    /// <summary>
    /// Adds a batch: prediction and target hold class indices of the same shape (any integer dtype,
    /// e.g. argmax output [N,H,W] and masks [N,H,W]).
    /// </summary>
    public void Update(torch.Tensor prediction, torch.Tensor target)
    {
        var ps = prediction.shape;
        var ts = target.shape;
        if (!ps.SequenceEqual(ts))
            throw new ArgumentException($"prediction shape [{string.Join(",", ps)}] differs from target shape [{string.Join(",", ts)}]");
        using var scope = torch.NewDisposeScope();
        var t = target.to(torch.int64).flatten();
        var p = prediction.to(torch.int64).flatten();
        // Named Scalars, disposed at the end: implicit temporaries can be finalized mid-call (see Models/BatchNorm.cs).
        using Scalar zero = 0L.ToScalar(), classes = ((long)NumClasses).ToScalar(), ignore = ((long)IgnoreIndex).ToScalar();
        var valid = t.ge(zero).logical_and(t.lt(classes)).logical_and(t.ne(ignore));
        var pv = p.masked_select(valid);
        if (pv.numel() == 0) return;
        if (pv.lt(zero).logical_or(pv.ge(classes)).any().item<bool>())
            throw new ArgumentException($"prediction holds a class index outside [0, {NumClasses})");
        // The binding's scalar overloads take doubles, which would promote int64 to float: multiply by an int64 tensor.
        var c = torch.tensor(new long[] { NumClasses }).to(t.device);
        var idx = t.masked_select(valid).mul(c).Plus(pv);
        var counts = idx.bincount(null, (long)NumClasses * NumClasses);
        if (_counts is null)
        {
            _counts = counts.DetachFromDisposeScope();
        }
        else
        {
            _counts.PlusInPlace(counts);
        }
    }

    /// <summary>Adds one image given as host byte arrays (e.g. decoded PNGs). Prediction values must be class indices.</summary>
    public void Update(ReadOnlySpan<byte> prediction, ReadOnlySpan<byte> target)
    {
        if (prediction.Length != target.Length)
            throw new ArgumentException($"prediction has {prediction.Length} pixels but target has {target.Length}");
        var c = NumClasses;
        for (var i = 0; i < target.Length; i++)
        {
            int t = target[i];
            if (t >= c || t == IgnoreIndex) continue;
            int p = prediction[i];
            if (p >= c) throw new ArgumentException($"prediction holds class index {p}, outside [0, {c})");
            _host[t * c + p]++;
        }
    }

    /// <summary>Adds another matrix's counts (e.g. from another worker).</summary>
    public void Add(ConfusionMatrix other)
    {
        if (other.NumClasses != NumClasses) throw new ArgumentException("confusion matrices differ in class count");
        var o = other.Counts();
        for (var i = 0; i < o.Length; i++) _host[i] += o[i];
    }

    /// <summary>The counts, row-major [gt * C + pred].</summary>
    public long[] Counts()
    {
        var r = (long[])_host.Clone();
        if (_counts is not null)
        {
            using var cpu = _counts.cpu();
            var d = cpu.ToArray<long>();
            for (var i = 0; i < r.Length; i++) r[i] += d[i];
        }
        return r;
    }

    public long this[int gt, int pred] => Counts()[gt * NumClasses + pred];

    public void Reset()
    {
        _counts?.Dispose();
        _counts = null;
        Array.Clear(_host);
    }

    /// <summary>The reference Evaluator's metrics over everything accumulated so far.</summary>
    public SegmentationMetrics Compute(IReadOnlyList<string>? classNames = null) => SegmentationMetrics.FromCounts(Counts(), NumClasses, classNames);

    public void Dispose() => Reset();
}

/// <summary>
/// Metrics as the reference Evaluator defines them. Classes with an undefined value (0/0) hold NaN and
/// are skipped by the means (NaN-mean); a class that is predicted but absent from the ground truth has
/// IoU 0 and counts in the mean.
/// </summary>
internal sealed record SegmentationMetrics(
    double PixelAccuracy,
    double MeanClassAccuracy,
    double MeanIoU,
    double FrequencyWeightedIoU,
    double[] ClassIoU,
    double[] ClassAccuracy,
    long[] GroundTruthPixels,
    IReadOnlyList<string> ClassNames)
{
    public static SegmentationMetrics FromCounts(long[] counts, int numClasses, IReadOnlyList<string>? classNames = null)
    {
        var c = numClasses;
        if (counts.Length != c * c) throw new ArgumentException($"expected {c * c} counts, got {counts.Length}");
        var names = classNames ?? Enumerable.Range(0, c).Select(i => $"class {i}").ToArray();
        if (names.Count != c) throw new ArgumentException($"{names.Count} class names for {c} classes");
        var rows = new long[c];
        var cols = new long[c];
        var diag = new long[c];
        long total = 0, correct = 0;
        for (var g = 0; g < c; g++)
        {
            for (var p = 0; p < c; p++)
            {
                var v = counts[g * c + p];
                rows[g] += v;
                cols[p] += v;
                total += v;
            }
            diag[g] = counts[g * c + g];
            correct += diag[g];
        }
        var iou = new double[c];
        var acc = new double[c];
        double fw = 0;
        for (var k = 0; k < c; k++)
        {
            // 0/0 gives NaN in IEEE doubles, exactly as numpy does in the reference.
            acc[k] = (double)diag[k] / rows[k];
            iou[k] = (double)diag[k] / (rows[k] + cols[k] - diag[k]);
            if (rows[k] > 0) fw += (double)rows[k] / total * iou[k];
        }
        return new SegmentationMetrics(
            PixelAccuracy: (double)correct / total,
            MeanClassAccuracy: NanMean(acc),
            MeanIoU: NanMean(iou),
            FrequencyWeightedIoU: total > 0 ? fw : double.NaN,
            ClassIoU: iou,
            ClassAccuracy: acc,
            GroundTruthPixels: rows,
            ClassNames: names.ToArray())
        {
            // F1 (Dice) per class, 2TP / (2TP + FP + FN): how face parsing reports each part.
            ClassF1 = Enumerable.Range(0, c).Select(k => 2.0 * diag[k] / (rows[k] + cols[k])).ToArray(),
        };
    }

    /// <summary>F1 per class, 2TP / (2TP + FP + FN) (NaN for a class neither present nor predicted).</summary>
    public double[] ClassF1 { get; init; } = [];

    /// <summary>The NaN-mean of the per-class F1 over every class (background included, as mIoU).</summary>
    public double MeanF1 => NanMean(ClassF1);

    /// <summary>The NaN-mean of the per-class F1 without class 0 (the face-parsing papers' "mean F1" over the parts).</summary>
    public double MeanF1WithoutBackground => NanMean(ClassF1.Skip(1));

    /// <summary>Mean over the non-NaN values; NaN when there are none (numpy.nanmean).</summary>
    public static double NanMean(IEnumerable<double> values)
    {
        double sum = 0;
        var n = 0;
        foreach (var v in values)
        {
            if (double.IsNaN(v)) continue;
            sum += v;
            n++;
        }
        return n == 0 ? double.NaN : sum / n;
    }

    /// <summary>A fixed-width per-class table followed by the summary line, for terminals and logs.</summary>
    public string FormatTable()
    {
        var sb = new StringBuilder();
        var w = Math.Max(12, ClassNames.Max(n => n.Length) + 2);
        sb.Append("class".PadRight(w)).Append("     IoU     Acc      F1    GT pixels\n");
        for (var k = 0; k < ClassIoU.Length; k++)
        {
            sb.Append(ClassNames[k].PadRight(w))
              .Append(Pct(ClassIoU[k]).PadLeft(8))
              .Append(Pct(ClassAccuracy[k]).PadLeft(8))
              .Append(Pct(k < ClassF1.Length ? ClassF1[k] : double.NaN).PadLeft(8))
              .Append(GroundTruthPixels[k].ToString(CultureInfo.InvariantCulture).PadLeft(13))
              .Append('\n');
        }
        sb.Append(CultureInfo.InvariantCulture, $"mIoU {Pct(MeanIoU)}  pixel acc {Pct(PixelAccuracy)}  mean class acc {Pct(MeanClassAccuracy)}  FWIoU {Pct(FrequencyWeightedIoU)}  mean F1 {Pct(MeanF1)}");
        return sb.ToString();
    }

    private static string Pct(double v) => double.IsNaN(v) ? "n/a" : (100 * v).ToString("0.00", CultureInfo.InvariantCulture);
}
