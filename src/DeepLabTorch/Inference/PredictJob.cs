using System.Globalization;
using System.Threading.Channels;
using DeepLabTorch.Data;
using DeepLabTorch.Extensions;
using DeepLabTorch.Runtime;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Inference;

/// <summary>Which files predict writes per image, next to each other in the output folder.</summary>
internal sealed record PredictOutputs
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
    /// <summary>
    /// &lt;stem&gt;_&lt;class&gt;.png per class but the first (background): 255 where the pixel is that class, 0 elsewhere (a
    /// face parsing's one mask per part). The names are the classes' names, made safe for file names.
    /// </summary>
    public IReadOnlyList<string>? PartMasks { get; init; }
}

/// <summary>The outcome of a predict run.</summary>
internal sealed record PredictSummary(int Images, int Failed, TimeSpan Elapsed, IReadOnlyList<string> FailedFiles)
{
    public double ImagesPerSecond => Images / Math.Max(1e-9, Elapsed.TotalSeconds);
}

/// <summary>
/// Runs a Predictor over a list of image files: decodes, batches consecutive images of the same size,
/// writes the chosen outputs, reports unreadable files and carries on.
/// </summary>
internal sealed class PredictJob
{
    private readonly Predictor _predictor;
    private readonly PredictOutputs _outputs;
    private readonly byte[] _palette;
    private readonly int _batchSize;
    private readonly ILogger _log;

    public PredictJob(Predictor predictor, string outputDir, PredictOutputs outputs, byte[] palette, int batchSize = 1, ILogger? log = null)
    {
        if (batchSize < 1) throw new UserException($"--batch-size must be at least 1, got {batchSize}");
        _predictor = predictor;
        OutputDir = outputDir;
        _outputs = outputs;
        _palette = palette;
        _batchSize = batchSize;
        _log = log ?? NullLogger.Instance;
    }

    public string OutputDir { get; }

    private sealed record Pending(string Path, string OutputStem, byte[] Rgb, int Height, int Width);

    /// <summary>One file as the decoding thread hands it over: the pixels, or why it could not be read.</summary>
    private sealed record Decoded(int Index, byte[]? Rgb, int Height, int Width, (string File, string Reason)? Failure);

    /// <summary>The managed part of one image's outputs, encoded and written by the writing thread.</summary>
    private sealed record Outputs(string Stem, byte[] Rgb, int Height, int Width, byte[]? Classes, byte[]? Probability);

    /// <summary>
    /// How many decoded images wait ahead of the network, and how many images' outputs wait behind it. Two keep
    /// both threads busy; more only holds more pixels.
    /// </summary>
    private const int QueueDepth = 2;

    /// <summary>
    /// Decodes, predicts and writes every file. Three stages overlap: a thread decodes the next images while the
    /// network runs on this one (all tensor work stays on the calling thread), and another encodes and writes the
    /// PNGs of the images before it. Files are still reported, and written, in their order. On 2 cores, where
    /// libtorch's 2 threads already fill the machine, the overlap and the class map read from channels-last
    /// logits (Predict) took the bf16 marginal time per 513² image from 98 to 85–94 ms (scripts/bench.sh
    /// predict); with more cores than intra-op threads, or on a GPU, the overlap hides decoding and writing whole.
    /// </summary>
    /// <param name="progress">Told, after each batch and each skipped file, how many files are through (label "predict", unit "images").</param>
    public PredictSummary Run(IReadOnlyList<string> files, IProgress<ProgressReport>? progress = null, CancellationToken ct = default)
    {
        Directory.CreateDirectory(OutputDir);
        var stems = OutputStems(files);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var failed = new List<string>();
        var batch = new List<Pending>();
        int done = 0;
        void Report(bool final = false) => progress?.Report(new ProgressReport("predict", done + failed.Count, files.Count, "images", clock.Elapsed)
        {
            Fields = failed.Count > 0 ? new[] { new ProgressField("failed", failed.Count.ToString(CultureInfo.InvariantCulture)) } : Array.Empty<ProgressField>(),
            Final = final,
        });

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var decodedQueue = Channel.CreateBounded<Decoded>(new BoundedChannelOptions(QueueDepth) { SingleReader = true, SingleWriter = true });
        var writeQueue = Channel.CreateBounded<Outputs>(new BoundedChannelOptions(QueueDepth) { SingleReader = true, SingleWriter = true });
        var decoding = Task.Run(() => DecodeAll(files, decodedQueue.Writer, stop.Token));
        var writing = Task.Run(() => WriteAll(writeQueue.Reader, stop.Token));

        void Flush()
        {
            if (batch.Count == 0) return;
            foreach (var o in Predict(batch))
                Enqueue(writeQueue.Writer, o, writing);
            done += batch.Count;
            batch.Clear();
            Report();
        }

        try
        {
            foreach (var d in decodedQueue.Reader.ReadAllAsync(stop.Token).ToBlockingEnumerable(stop.Token))
            {
                ct.ThrowIfCancellationRequested();
                var path = files[d.Index];
                if (d.Failure is { } failure)
                {
                    _log.LogWarning("skipped {File}: {Reason}", failure.File, failure.Reason);
                    failed.Add(path);
                    Report();
                    continue;
                }
                if (batch.Count > 0 && (batch[0].Height != d.Height || batch[0].Width != d.Width)) Flush();
                batch.Add(new Pending(path, stems[d.Index], d.Rgb!, d.Height, d.Width));
                if (batch.Count == _batchSize) Flush();
            }
            Flush();
            writeQueue.Writer.Complete();
            WaitRethrowingTheCause(writing);
        }
        catch
        {
            stop.Cancel();
            writeQueue.Writer.TryComplete();
            try { Task.WaitAll(decoding, writing); } catch (AggregateException) { } // the first error is the one to report
            Report(final: true);
            throw;
        }
        Report(final: true);
        return new PredictSummary(done, failed.Count, clock.Elapsed, failed);
    }

    /// <summary>The decoding thread: every file in order, a failure as a message instead of pixels.</summary>
    private static async Task DecodeAll(IReadOnlyList<string> files, ChannelWriter<Decoded> queue, CancellationToken ct)
    {
        try
        {
            for (int i = 0; i < files.Count; i++)
            {
                Decoded d;
                try
                {
                    var img = ImageCodec.DecodeImage(files[i]);
                    d = new Decoded(i, img.Rgb, img.Height, img.Width, null);
                }
                catch (Exception e) when (e is DataException or IOException or UnauthorizedAccessException or InvalidDataException)
                {
                    d = new Decoded(i, null, 0, 0, e is DataException de ? (de.Path, de.Reason) : (files[i], e.Message));
                }
                await queue.WriteAsync(d, ct).ConfigureAwait(false);
            }
            queue.Complete();
        }
        catch (Exception e)
        {
            queue.TryComplete(e);
        }
    }

    /// <summary>The writing thread: PNG encoding and file writes, in order. Its first error ends the run.</summary>
    private async Task WriteAll(ChannelReader<Outputs> queue, CancellationToken ct)
    {
        await foreach (var o in queue.ReadAllAsync(ct).ConfigureAwait(false))
        {
            if (_outputs.Masks) ImageCodec.WritePalettePng(o.Stem + ".png", o.Classes!, o.Height, o.Width, _palette);
            if (_outputs.Overlay)
                ImageCodec.WritePng(o.Stem + "_overlay.png", SegmentationOutputs.Overlay(o.Rgb, o.Classes!, o.Height, o.Width, _palette, _outputs.OverlayOpacity), o.Height, o.Width);
            if (o.Probability is not null) ImageCodec.WriteGrayPng(o.Stem + "_prob.png", o.Probability, o.Height, o.Width);
            if (_outputs.PartMasks is { } parts)
            {
                var mask = new byte[o.Classes!.Length];
                for (int k = 1; k < parts.Count; k++)
                {
                    for (int i = 0; i < mask.Length; i++) mask[i] = o.Classes[i] == k ? (byte)255 : (byte)0;
                    ImageCodec.WriteGrayPng(o.Stem + "_" + FileNamePart(parts[k]) + ".png", mask, o.Height, o.Width);
                }
            }
        }
    }

    /// <summary>A class name as a file-name part: letters, digits, '-' and '_' kept, anything else '_'.</summary>
    internal static string FileNamePart(string name) =>
        new(name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' ? c : '_').ToArray());

    /// <summary>Hands outputs to the writing thread; when that thread has failed, its error is the one thrown here.</summary>
    private static void Enqueue(ChannelWriter<Outputs> queue, Outputs o, Task writing)
    {
        var pending = queue.WriteAsync(o);
        if (pending.IsCompletedSuccessfully) return;
        // The queue is full: wait for room, or for the writer to stop.
        var room = pending.AsTask();
        Task.WaitAny(room, writing);
        if (writing.IsFaulted || writing.IsCanceled) WaitRethrowingTheCause(writing);
        room.GetAwaiter().GetResult();
    }

    /// <summary>Waits for a task and throws its own exception (not an AggregateException around it).</summary>
    private static void WaitRethrowingTheCause(Task task) => task.GetAwaiter().GetResult();

    /// <summary>
    /// The tensor work of one batch, on the calling thread: normalize, the network, class maps and
    /// probabilities as bytes; logits files are written here too (they need the tensor).
    /// </summary>
    private List<Outputs> Predict(List<Pending> batch)
    {
        using var scope = NewDisposeScope();
        var images = batch.Select(p => RgbTensors.Normalize(RgbTensors.FromBytes(p.Rgb, p.Height, p.Width))).ToList();
        var input = images.Count == 1 ? images[0] : cat(images, 0);
        var logits = _predictor.Logits(input);
        var result = new List<Outputs>(batch.Count);
        for (int b = 0; b < batch.Count; b++)
        {
            var p = batch[b];
            // No contiguous() for the class map: on channels-last logits each pixel's scores lie next to each other,
            // so the max over classes reads memory in order (5.0 ms at 21×513², 2 threads, against 8.8 ms for a
            // CHW copy and the max across planes).
            var one = logits.select(0, b);
            var stem = Path.Combine(OutputDir, p.OutputStem);
            byte[]? classes = _outputs.Masks || _outputs.Overlay || _outputs.PartMasks is not null ? SegmentationOutputs.ClassIndices(one) : null;
            byte[]? probability = _outputs.ProbabilityClass is int cls ? SegmentationOutputs.Probability(one, cls) : null;
            // The image's output folder (inputs' sub-folders are kept), made here once for every output of it.
            var dir = Path.GetDirectoryName(stem);
            if (dir is not null) Directory.CreateDirectory(dir);
            if (_outputs.Logits) NpyWriter.Write(stem + ".npy", one.contiguous());
            result.Add(new Outputs(stem, p.Rgb, p.Height, p.Width, classes, probability));
        }
        return result;
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
