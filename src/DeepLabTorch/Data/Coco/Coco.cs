using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using DeepLabTorch.Runtime;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeepLabTorch.Data;

/// <summary>
/// COCO 2017 as the reference trains on it: <c>annotations/instances_{split}2017.json</c> and <c>images/{split}2017/</c>,
/// the 20 VOC categories out of COCO's 80 (the reference's CAT_LIST), instance masks merged with the first instance
/// winning where they overlap, and only images with more than 1000 labelled pixels.
/// </summary>
internal static class Coco
{
    public const string Name = "coco";

    /// <summary>An image is kept when more pixels than this carry a class (the reference's rule).</summary>
    public const int MinLabelledPixels = 1000;

    /// <summary>The reference's CAT_LIST: the COCO category id of each VOC class index (index 0, background, has none).</summary>
    public static IReadOnlyList<int> CategoryIds { get; } = new[] { 0, 5, 2, 16, 9, 44, 6, 3, 17, 62, 21, 67, 18, 19, 4, 1, 64, 20, 63, 7, 72 };

    internal static IReadOnlyDictionary<long, byte> LabelOf { get; } =
        CategoryIds.Select((category, index) => (category, index)).Where(p => p.index > 0).ToDictionary(p => (long)p.category, p => (byte)p.index);

    public static string AnnotationFile(string root, string split) => Path.Combine(root, "annotations", $"instances_{split}2017.json");

    public static string ImageFolder(string root, string split) => Path.Combine(root, "images", $"{split}2017");

    /// <summary>
    /// The class-index mask (row-major, h×w) of one image: its instances painted in file order, each only where no
    /// earlier instance is. A polygon list is the union of its polygons.
    /// </summary>
    /// <exception cref="FormatException">An RLE whose size differs from the image's, or whose runs do not cover it exactly.</exception>
    internal static byte[] RenderMask(CocoImage image, IEnumerable<CocoInstance> instances)
    {
        int h = image.Height, w = image.Width;
        var mask = new byte[h * w];
        foreach (var instance in instances)
        {
            foreach (var shape in instance.Shapes)
            {
                var (runs, sh, sw) = shape switch
                {
                    CocoPolygon p => (CocoRle.FromPolygon(p.Xy, h, w), h, w),
                    CocoRuns r => (r.Counts, r.Height, r.Width),
                    CocoRleString s => (DecodeString(s.Counts, instance), s.Height, s.Width),
                    _ => throw new UnreachableException(),
                };
                if (sh != h || sw != w)
                    throw new FormatException($"annotation {instance.Id}: its RLE is {sw}x{sh} (WxH) but image {image.Id} ({image.FileName}) is {w}x{h}");
                if (!CocoRle.PaintFirstWins(runs, mask, h, w, instance.Label))
                    throw new FormatException($"annotation {instance.Id}: its RLE counts add up to {runs.Sum(c => (long)c)} pixels, not the {(long)h * w} of image {image.Id} ({w}x{h})");
            }
        }
        return mask;
    }

    private static uint[] DecodeString(string counts, CocoInstance instance)
    {
        try { return CocoRle.FromString(counts); }
        catch (FormatException e) { throw new FormatException($"annotation {instance.Id}: its RLE string is broken: {e.Message}", e); }
    }
}

/// <summary>
/// A split of COCO 2017 (train or val) with VOC's 21 classes. The merged masks are made once per annotation file,
/// in parallel, and kept as palette PNGs in <c>annotations/deeplabtorch-masks/{split}2017/</c> (or the user's cache
/// folder when the data root is read-only), so later runs read neither the JSON nor the polygons.
/// </summary>
internal sealed class CocoDataset : ISegmentationDataset
{
    private const string FormatLine = "# deeplabtorch coco masks v1";
    private readonly string _images;
    private readonly string _masks;
    private readonly (long Id, string File, int Height, int Width)[] _entries;

    public CocoDataset(string root, string split, ILogger? log = null, IProgress<ProgressReport>? progress = null)
    {
        if (split is not ("train" or "val")) throw new UserException($"{Coco.Name} has no split '{split}' (expected train or val)");
        log ??= NullLogger.Instance;
        var annotations = Coco.AnnotationFile(root, split);
        if (!File.Exists(annotations)) throw new UserException($"no COCO annotations at {annotations} (expected annotations/instances_{split}2017.json under --data-root)");
        _images = Coco.ImageFolder(root, split);
        if (!Directory.Exists(_images)) throw new UserException($"no COCO images at {_images} (expected images/{split}2017/)");
        var cache = CacheFolder(root, split, annotations, log);
        var index = Path.Combine(cache, "index.tsv");
        var source = SourceLine(annotations);
        if (ReadIndex(index, source) is not { } entries)
        {
            Build(annotations, split, cache, source, log, progress);
            entries = ReadIndex(index, source) ?? throw new DataException(index, "was just written but cannot be read back");
        }
        else log.LogInformation("COCO {Split}2017: {Count} images with their masks from {Cache}", split, entries.Length, cache);
        _entries = entries;
        _masks = Path.Combine(cache, "masks");
        if (_entries.Length == 0) throw new DataException(annotations, $"no image of {split}2017 has more than {Coco.MinLabelledPixels} pixels of the 20 VOC categories");
        Name = $"{Coco.Name}/{split}";
    }

    public string Name { get; }
    public int Count => _entries.Length;
    public IReadOnlyList<string> ClassNames => VocClasses.Names;
    public int IgnoreIndex => 255;

    /// <summary>The COCO image id of sample i.</summary>
    public long ImageId(int index) => _entries[index].Id;

    public SegmentationSample Load(int index)
    {
        var (id, file, height, width) = _entries[index];
        var imagePath = Path.Combine(_images, file);
        var (rgb, h, w) = ImageCodec.DecodeImage(imagePath);
        if (h != height || w != width)
            throw new DataException(imagePath, $"is {w}x{h} (WxH) but its annotations say {width}x{height}");
        var maskPath = Path.Combine(_masks, MaskName(id));
        var (mask, mh, mw) = ImageCodec.DecodeMask(maskPath);
        if (mh != h || mw != w) throw new DataException(maskPath, $"is {mw}x{mh} (WxH) but the image {imagePath} is {w}x{h}; delete the cache folder to rebuild it");
        return new SegmentationSample { Id = Path.GetFileNameWithoutExtension(file), Height = h, Width = w, Image = rgb, Mask = mask };
    }

    private static string MaskName(long id) => id.ToString("D12", CultureInfo.InvariantCulture) + ".png";

    /// <summary>The annotation file's identity: its length and modification time. A changed file makes new masks.</summary>
    private static string SourceLine(string annotations)
    {
        var info = new FileInfo(annotations);
        return $"{FormatLine} {info.Length} {info.LastWriteTimeUtc.Ticks}";
    }

    /// <summary>root/annotations/deeplabtorch-masks/{split}2017 when it can be written, else the user's cache folder.</summary>
    private static string CacheFolder(string root, string split, string annotations, ILogger log)
    {
        var beside = Path.Combine(root, "annotations", "deeplabtorch-masks", $"{split}2017");
        if (File.Exists(Path.Combine(beside, "index.tsv"))) return beside;
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(beside)!);
            var probe = Path.Combine(Path.GetDirectoryName(beside)!, $".write-test-{Environment.ProcessId}");
            File.WriteAllText(probe, "");
            File.Delete(probe);
            return beside;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            var key = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(annotations))))[..16].ToLowerInvariant();
            var user = Path.Combine(Path.GetDirectoryName(KernelGuard.CachePath())!, "coco", key, $"{split}2017");
            log.LogInformation("{Root} is read-only: the COCO masks go to {Cache}", root, user);
            return user;
        }
    }

    private static (long, string, int, int)[]? ReadIndex(string index, string source)
    {
        if (!File.Exists(index)) return null;
        var lines = File.ReadAllLines(index);
        if (lines.Length == 0 || lines[0] != source) return null;
        var entries = new (long, string, int, int)[lines.Length - 1];
        for (int i = 1; i < lines.Length; i++)
        {
            var f = lines[i].Split('\t');
            if (f.Length != 4) throw new DataException(index, $"line {i + 1} is not id, file, height, width; delete the folder to rebuild it");
            entries[i - 1] = (long.Parse(f[0], CultureInfo.InvariantCulture), f[1],
                int.Parse(f[2], CultureInfo.InvariantCulture), int.Parse(f[3], CultureInfo.InvariantCulture));
        }
        return entries;
    }

    /// <summary>Streams the annotation file, renders every image's mask in parallel, and keeps those over the pixel rule.</summary>
    private static void Build(string annotations, string split, string cache, string source, ILogger log, IProgress<ProgressReport>? progress)
    {
        var clock = Stopwatch.StartNew();
        log.LogInformation("COCO {Split}2017: reading {File} (once; later runs reuse the masks)", split, annotations);
        var coco = CocoAnnotations.Read(annotations, Coco.LabelOf);
        log.LogInformation("COCO {Split}2017: {Images} images, {Kept} instances of the 20 VOC categories ({Skipped} of others) read in {Seconds:F1} s; making masks in {Cache}",
            split, coco.Images.Count, coco.InstancesByImage.Values.Sum(l => l.Count), coco.InstancesSkipped, clock.Elapsed.TotalSeconds, cache);
        var partial = cache + $".partial-{Environment.ProcessId}";
        if (Directory.Exists(partial)) Directory.Delete(partial, true);
        var maskFolder = Path.Combine(partial, "masks");
        Directory.CreateDirectory(maskFolder);
        var kept = new bool[coco.Images.Count];
        var problems = new string?[coco.Images.Count];
        long done = 0;
        var label = $"coco {split} masks";
        Parallel.For(0, coco.Images.Count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
        {
            var image = coco.Images[i];
            var instances = coco.InstancesByImage.TryGetValue(image.Id, out var list) ? list : new List<CocoInstance>();
            try
            {
                var mask = Coco.RenderMask(image, instances);
                int labelled = mask.Length - mask.AsSpan().Count((byte)0);
                if (labelled > Coco.MinLabelledPixels)
                {
                    File.WriteAllBytes(Path.Combine(maskFolder, MaskName(image.Id)), ImageCodec.EncodePalettePng(mask, image.Height, image.Width));
                    kept[i] = true;
                }
            }
            catch (FormatException e)
            {
                problems[i] = e.Message;
            }
            long n = Interlocked.Increment(ref done);
            if (n % 256 == 0) progress?.Report(new ProgressReport(label, n, coco.Images.Count, "images", clock.Elapsed));
        });
        if (problems.FirstOrDefault(p => p != null) is { } first)
        {
            Directory.Delete(partial, true);
            int more = problems.Count(p => p != null) - 1;
            throw new DataException(annotations, first + (more > 0 ? $" (and {more} more bad annotations)" : ""));
        }
        progress?.Report(new ProgressReport(label, coco.Images.Count, coco.Images.Count, "images", clock.Elapsed) { Final = true });
        var index = new StringBuilder(source).Append('\n');
        for (int i = 0; i < kept.Length; i++)
            if (kept[i])
            {
                var im = coco.Images[i];
                index.Append(CultureInfo.InvariantCulture, $"{im.Id}\t{im.FileName}\t{im.Height}\t{im.Width}\n");
            }
        File.WriteAllText(Path.Combine(partial, "index.tsv"), index.ToString());
        if (Directory.Exists(cache)) Directory.Delete(cache, true);
        Directory.Move(partial, cache);
        log.LogInformation("COCO {Split}2017: kept {Kept} of {Images} images (more than {Min} labelled pixels) in {Seconds:F1} s",
            split, kept.Count(k => k), coco.Images.Count, Coco.MinLabelledPixels, clock.Elapsed.TotalSeconds);
    }
}
