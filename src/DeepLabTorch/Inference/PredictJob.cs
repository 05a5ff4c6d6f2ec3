using System.Globalization;
using DeepLabTorch.Data;
using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Inference;

/// <summary>Which files predict writes per image, next to each other in the output folder.</summary>
public sealed record PredictOutputs
{
    /// <summary>&lt;stem&gt;.png: class indices with a colour palette.</summary>
    public bool Masks { get; init; } = true;
    /// <summary>&lt;stem&gt;_overlay.png: class colours blended over the image.</summary>
    public bool Overlay { get; init; }
    public double OverlayOpacity { get; init; } = 0.5;
    /// <summary>&lt;stem&gt;_prob.png: softmax probability of this class as 8-bit gray (0..255).</summary>
    public int? ProbabilityClass { get; init; }
    /// <summary>&lt;stem&gt;.npy: float32 [C,H,W] logits at the input size.</summary>
    public bool Logits { get; init; }
}

/// <summary>The outcome of a predict run.</summary>
public sealed record PredictSummary(int Images, int Failed, TimeSpan Elapsed, IReadOnlyList<string> FailedFiles)
{
    public double ImagesPerSecond => Images / Math.Max(1e-9, Elapsed.TotalSeconds);
}

/// <summary>
/// Runs a Predictor over a list of image files: decodes, batches consecutive images of the same size,
/// writes the chosen outputs, reports unreadable files and carries on.
/// </summary>
public sealed class PredictJob
{
    private readonly Predictor _predictor;
    private readonly PredictOutputs _outputs;
    private readonly byte[] _palette;
    private readonly int _batchSize;
    private readonly Microsoft.Extensions.Logging.ILogger _log;

    public PredictJob(Predictor predictor, string outputDir, PredictOutputs outputs, byte[] palette, int batchSize = 1, Microsoft.Extensions.Logging.ILogger? log = null)
    {
        if (batchSize < 1) throw new UserException($"--batch-size must be at least 1, got {batchSize}");
        _predictor = predictor;
        OutputDir = outputDir;
        _outputs = outputs;
        _palette = palette;
        _batchSize = batchSize;
        _log = log ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
    }

    public string OutputDir { get; }

    private sealed record Pending(string Path, string OutputStem, byte[] Rgb, int Height, int Width);

    public PredictSummary Run(IReadOnlyList<string> files, TextWriter? progress = null, CancellationToken ct = default)
    {
        Directory.CreateDirectory(OutputDir);
        var stems = OutputStems(files);
        var bar = new ProgressLine(progress ?? TextWriter.Null, "images", files.Count, progress is null ? false : null);
        var failed = new List<string>();
        var batch = new List<Pending>();
        int done = 0;

        void Flush()
        {
            if (batch.Count == 0) return;
            WriteBatch(batch);
            foreach (var _ in batch) bar.Step();
            done += batch.Count;
            batch.Clear();
        }

        for (int i = 0; i < files.Count; i++)
        {
            ct.ThrowIfCancellationRequested();
            var path = files[i];
            (byte[] Rgb, int Height, int Width) img;
            try
            {
                img = ImageCodec.DecodeImage(path);
            }
            catch (Exception e) when (e is DataException or IOException or UnauthorizedAccessException or InvalidDataException)
            {
                var reason = e is DataException de ? de.Message : $"{path}: {e.Message}";
                if (progress is not null) bar.Finish();
                Runtime.LogExtensions.Warn(_log, $"skipped {reason}");
                failed.Add(path);
                bar.Step();
                continue;
            }
            if (batch.Count > 0 && (batch[0].Height != img.Height || batch[0].Width != img.Width)) Flush();
            batch.Add(new Pending(path, stems[i], img.Rgb, img.Height, img.Width));
            if (batch.Count == _batchSize) Flush();
        }
        Flush();
        bar.Finish();
        return new PredictSummary(done, failed.Count, bar.Elapsed, failed);
    }

    private void WriteBatch(List<Pending> batch)
    {
        using var scope = NewDisposeScope();
        var images = batch.Select(p => RgbTensors.Normalize(RgbTensors.FromBytes(p.Rgb, p.Height, p.Width))).ToList();
        var input = images.Count == 1 ? images[0] : cat(images, 0);
        var logits = _predictor.Logits(input);
        for (int b = 0; b < batch.Count; b++)
        {
            var p = batch[b];
            var one = logits.select(0, b).contiguous();
            var stem = Path.Combine(OutputDir, p.OutputStem);
            var dir = Path.GetDirectoryName(stem);
            if (dir is not null) Directory.CreateDirectory(dir);
            byte[]? classes = null;
            if (_outputs.Masks || _outputs.Overlay) classes = SegmentationOutputs.ClassIndices(one);
            if (_outputs.Masks) ImageCodec.WritePalettePng(stem + ".png", classes!, p.Height, p.Width, _palette);
            if (_outputs.Overlay)
                ImageCodec.WritePng(stem + "_overlay.png", SegmentationOutputs.Overlay(p.Rgb, classes!, p.Height, p.Width, _palette, _outputs.OverlayOpacity), p.Height, p.Width);
            if (_outputs.ProbabilityClass is int cls)
                ImageCodec.WriteGrayPng(stem + "_prob.png", SegmentationOutputs.Probability(one, cls), p.Height, p.Width);
            if (_outputs.Logits) NpyWriter.Write(stem + ".npy", one);
        }
    }

    /// <summary>
    /// Output names without extension: the file's stem, under the sub-folder it had below the inputs'
    /// common folder, so a/x.jpg and b/x.jpg do not overwrite each other.
    /// </summary>
    public static IReadOnlyList<string> OutputStems(IReadOnlyList<string> files)
    {
        if (files.Count == 0) return Array.Empty<string>();
        var dirs = files.Select(f => Path.GetDirectoryName(Path.GetFullPath(f)) ?? "").ToList();
        var common = dirs[0];
        foreach (var d in dirs.Skip(1))
            while (!(d == common || d.StartsWith(common.EndsWith(Path.DirectorySeparatorChar) ? common : common + Path.DirectorySeparatorChar, StringComparison.Ordinal)))
                common = Path.GetDirectoryName(common) ?? "";
        var stems = new List<string>();
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < files.Count; i++)
        {
            var rel = Path.GetRelativePath(common.Length == 0 ? "/" : common, dirs[i]);
            var stem = Path.GetFileNameWithoutExtension(files[i]);
            var s = rel == "." ? stem : Path.Combine(rel, stem);
            // x.jpg and x.png in one folder: number the later ones.
            if (seen.TryGetValue(s, out var n)) { seen[s] = n + 1; s = s + "-" + (n + 1).ToString(CultureInfo.InvariantCulture); }
            else seen[s] = 1;
            stems.Add(s);
        }
        return stems;
    }
}
