using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.Logging;

namespace DeepLabTorch.Data;

/// <summary>What a scan of a data set found.</summary>
internal sealed record CheckReport(
    int Samples,
    int Bad,
    IReadOnlyList<string> Problems,
    IReadOnlyList<string> ClassNames,
    long[] ClassPixels,
    long IgnorePixels,
    int MinHeight, int MaxHeight, int MinWidth, int MaxWidth, double MeanHeight, double MeanWidth,
    IReadOnlyList<(int Height, int Width, int Count)> CommonSizes)
{
    public bool Clean => Problems.Count == 0;

    /// <summary>
    /// The report as one JSON object: images (samples read), bad, problems, class_names, class_pixels (the pixel count of
    /// each class index in the decoded masks), ignored_pixels, and the image sizes.
    /// </summary>
    public string ToJson()
    {
        using var buffer = new MemoryStream();
        using (var w = new System.Text.Json.Utf8JsonWriter(buffer, new System.Text.Json.JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteNumber("images", Samples);
            w.WriteNumber("bad", Bad);
            w.WriteStartArray("problems");
            foreach (var p in Problems) w.WriteStringValue(p);
            w.WriteEndArray();
            w.WriteStartArray("class_names");
            foreach (var n in ClassNames) w.WriteStringValue(n);
            w.WriteEndArray();
            w.WriteStartArray("class_pixels");
            foreach (var c in ClassPixels) w.WriteNumberValue(c);
            w.WriteEndArray();
            w.WriteNumber("ignored_pixels", IgnorePixels);
            if (Samples > Bad)
            {
                w.WriteStartObject("height");
                w.WriteNumber("min", MinHeight);
                w.WriteNumber("max", MaxHeight);
                w.WriteNumber("mean", Math.Round(MeanHeight, 2));
                w.WriteEndObject();
                w.WriteStartObject("width");
                w.WriteNumber("min", MinWidth);
                w.WriteNumber("max", MaxWidth);
                w.WriteNumber("mean", Math.Round(MeanWidth, 2));
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    public string Format()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"checked {Samples} samples: {(Clean ? "clean" : $"{Problems.Count} problem(s)")}");
        foreach (var p in Problems) sb.AppendLine("  BAD " + p);
        if (Samples > Bad)
        {
            sb.AppendLine($"image size: height {MinHeight}-{MaxHeight} (mean {MeanHeight:F1}), width {MinWidth}-{MaxWidth} (mean {MeanWidth:F1})");
            sb.AppendLine("most common sizes (WxH): " + string.Join(", ", CommonSizes.Select(s => $"{s.Width}x{s.Height} ({s.Count})")));
            long total = ClassPixels.Sum() + IgnorePixels;
            sb.AppendLine("class pixels:");
            for (int c = 0; c < ClassPixels.Length; c++)
                sb.AppendLine($"  {c,3} {ClassNames[c],-14} {ClassPixels[c],12} {100.0 * ClassPixels[c] / Math.Max(1, total),6:F2}%");
            sb.AppendLine($"  255 {"(ignore)",-14} {IgnorePixels,12} {100.0 * IgnorePixels / Math.Max(1, total),6:F2}%");
        }
        return sb.ToString();
    }
}

/// <summary>Decodes every sample of a data set without training and reports every bad file.</summary>
internal static class DataChecker
{
    /// <param name="splits">Splits to scan; null = train and val (plus trainaug with UseSbd).</param>
    /// <param name="log">What opening the splits reports (Datasets.Open); the problems found are the report's, not log messages.</param>
    public static CheckReport Run(DataOptions o, IReadOnlyList<string>? splits = null, int threads = 2, ILogger? log = null, CancellationToken ct = default)
    {
        splits ??= o.UseSbd ? new[] { "train", "val", "trainaug" } : new[] { "train", "val" };
        var problems = new ConcurrentBag<string>();
        var sets = new List<ISegmentationDataset>();
        foreach (var split in splits)
        {
            try { sets.Add(Datasets.Open(o, split, log)); }
            catch (DataException e) { problems.Add(e.Message); }
        }
        // The same file may be in several splits: check it once.
        var work = new List<(ISegmentationDataset Ds, int Index)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var ds in sets)
            for (int i = 0; i < ds.Count; i++)
            {
                string key = ds is FileDataset fd ? fd.Entries[i].ImagePath + "|" + fd.Entries[i].MaskPath : ds.Name + "#" + i;
                if (seen.Add(key)) work.Add((ds, i));
            }
        int classes = sets.Count > 0 ? sets[0].NumClasses : (o.ClassNames?.Length ?? VocClasses.Names.Count);
        var names = sets.Count > 0 ? sets[0].ClassNames : (IReadOnlyList<string>)(o.ClassNames ?? VocClasses.Names.ToArray());
        var pixels = new long[classes];
        long ignore = 0;
        int bad = 0;
        var sizes = new ConcurrentDictionary<(int, int), int>();
        long sumH = 0, sumW = 0;
        int minH = int.MaxValue, maxH = 0, minW = int.MaxValue, maxW = 0;
        var gate = new object();
        Parallel.ForEach(work, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads), CancellationToken = ct }, item =>
        {
            SegmentationSample s;
            try
            {
                s = item.Ds.Load(item.Index);
            }
            catch (DataException e)
            {
                problems.Add(e.Message);
                Interlocked.Increment(ref bad);
                return;
            }
            var local = new long[256];
            foreach (var v in s.Mask) local[v]++;
            sizes.AddOrUpdate((s.Height, s.Width), 1, (_, n) => n + 1);
            lock (gate)
            {
                for (int c = 0; c < classes; c++) pixels[c] += local[c];
                ignore += local[255];
                sumH += s.Height; sumW += s.Width;
                minH = Math.Min(minH, s.Height); maxH = Math.Max(maxH, s.Height);
                minW = Math.Min(minW, s.Width); maxW = Math.Max(maxW, s.Width);
            }
        });
        int good = work.Count - bad;
        var common = sizes.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key).Take(5).Select(kv => (kv.Key.Item1, kv.Key.Item2, kv.Value)).ToList();
        return new CheckReport(work.Count, bad, problems.OrderBy(p => p, StringComparer.Ordinal).ToList(), names, pixels, ignore,
            good > 0 ? minH : 0, maxH, good > 0 ? minW : 0, maxW, good > 0 ? (double)sumH / good : 0, good > 0 ? (double)sumW / good : 0, common);
    }
}
