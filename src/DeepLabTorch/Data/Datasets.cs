using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeepLabTorch.Data;

/// <summary>Opens a split of a data set by name: pascal (VOC 2012, optionally + SBD), sbd, folder, synthetic, celebamask-hq, cityscapes, coco.</summary>
internal static class Datasets
{
    public const int DefaultSyntheticCount = 300;
    public const int DefaultSyntheticSeed = 1;
    public const string DefaultSyntheticRoot = "data/synthetic";

    /// <param name="split">train | val | trainval | trainaug.</param>
    /// <param name="log">Where one-line notes go (category DeepLabTorch.Data): the trainaug counts, the synthetic set's generation.</param>
    /// <param name="progress">How far a one-time preparation has got (COCO's masks on the first run).</param>
    public static ISegmentationDataset Open(DataOptions o, string split, ILogger? log = null, IProgress<Runtime.ProgressReport>? progress = null)
    {
        log ??= NullLogger.Instance;
        o.Validate();
        if (split is not ("train" or "val" or "trainval" or "trainaug"))
            throw new UserException($"unknown split '{split}' (expected train, val, trainval or trainaug)");
        switch (o.Dataset)
        {
            case "pascal":
                return OpenPascal(o, RequireRoot(o), split, log);
            case "synthetic":
            {
                var root = o.DataRoot ?? DefaultSyntheticRoot;
                if (o.DataRoot == null && !File.Exists(Path.Combine(root, "VOCdevkit", "VOC2012", "ImageSets", "Segmentation", "trainval.txt")))
                {
                    // trainval.txt is written last: without it an earlier generation was cut short.
                    log.LogInformation("generating the synthetic VOC-format set in {Root} ({Images} images, seed {Seed})", root, DefaultSyntheticCount, DefaultSyntheticSeed);
                    Synthetic.Generate(root, DefaultSyntheticCount, DefaultSyntheticSeed);
                }
                return OpenPascal(o, root, split, log);
            }
            case "sbd":
                return OpenSbdOnly(o, split);
            case CelebAMaskHq.Name:
                return new CelebAMaskHqDataset(RequireRoot(o), split, o.ClassNames);
            case Cityscapes.Name:
                return new CityscapesDataset(RequireRoot(o), split);
            case Coco.Name:
                return new CocoDataset(RequireRoot(o), split, log, progress);
            default:
                return OpenFolder(o, RequireRoot(o), split);
        }
    }

    private static string RequireRoot(DataOptions o)
    {
        if (string.IsNullOrWhiteSpace(o.DataRoot)) throw new UserException($"dataset '{o.Dataset}' needs --data-root");
        if (!Directory.Exists(o.DataRoot)) throw new UserException($"data root {o.DataRoot} does not exist");
        return o.DataRoot;
    }

    // ------------------------------------------------------------------ VOC 2012
    /// <summary>The VOC2012 folder: the root itself, or root/VOCdevkit/VOC2012, or root/VOC2012.</summary>
    public static string ResolveVocRoot(string root)
    {
        foreach (var c in new[] { root, Path.Combine(root, "VOCdevkit", "VOC2012"), Path.Combine(root, "VOC2012") })
            if (Directory.Exists(Path.Combine(c, "JPEGImages")) || Directory.Exists(Path.Combine(c, "ImageSets")))
                return c;
        throw new UserException($"no PASCAL VOC 2012 tree under {root} (expected JPEGImages/, SegmentationClass/ and " +
            "ImageSets/Segmentation/ in it or in VOCdevkit/VOC2012/)");
    }

    private static ISegmentationDataset OpenPascal(DataOptions o, string root, string split, ILogger log)
    {
        var voc = ResolveVocRoot(root);
        var names = o.ClassNames ?? VocClasses.Names.ToArray();
        if (split == "trainaug" || (o.UseSbd && split == "train"))
            return TrainAug(o, root, voc, names, log);
        var ids = ReadSplitList(Path.Combine(voc, "ImageSets", "Segmentation", split + ".txt"));
        return new FileDataset($"{o.Dataset}/{split}", ids.Select(id => VocEntry(voc, id)), names, o.IgnoreValue);
    }

    private static SampleEntry VocEntry(string voc, string id) =>
        new(id, Path.Combine(voc, "JPEGImages", id + ".jpg"), Path.Combine(voc, "SegmentationClass", id + ".png"));

    /// <summary>
    /// VOC train + SBD train + SBD val, minus every VOC val image, de-duplicated (first occurrence
    /// kept). VOC's own masks win where they exist; SBD's .mat masks fill the rest. A pre-converted
    /// SegmentationClassAug folder with train_aug.txt is used instead when present.
    /// </summary>
    private static FileDataset TrainAug(DataOptions o, string root, string voc, IReadOnlyList<string> names, ILogger log)
    {
        var valIds = new HashSet<string>(ReadSplitList(Path.Combine(voc, "ImageSets", "Segmentation", "val.txt")), StringComparer.Ordinal);
        var augDir = new[] { Path.Combine(voc, "SegmentationClassAug"), Path.Combine(root, "SegmentationClassAug") }.FirstOrDefault(Directory.Exists);
        if (augDir != null && o.SbdRoot == null)
        {
            var listPath = new[]
            {
                Path.Combine(voc, "ImageSets", "Segmentation", "train_aug.txt"), Path.Combine(voc, "train_aug.txt"),
                Path.Combine(root, "train_aug.txt"), Path.Combine(augDir, "train_aug.txt"),
            }.FirstOrDefault(File.Exists);
            if (listPath != null)
            {
                var listed = ReadSplitList(listPath);
                var kept = Dedupe(listed.Where(id => !valIds.Contains(id)), out int dupes);
                var inVal = listed.Count(valIds.Contains);
                var summary = $"trainaug: {kept.Count} images from {listPath} ({listed.Count} listed, {inVal} VOC val removed, {dupes} duplicates removed)";
                log.LogInformation("trainaug: {Images} images from {List} ({Listed} listed, {ValRemoved} VOC val removed, {Duplicates} duplicates removed)",
                    kept.Count, listPath, listed.Count, inVal, dupes);
                return new FileDataset("pascal/trainaug", kept.Select(id =>
                    new SampleEntry(id, Path.Combine(voc, "JPEGImages", id + ".jpg"), Path.Combine(augDir, id + ".png"))), names, o.IgnoreValue, summary: summary);
            }
        }
        var sbd = ResolveSbdRoot(o, root, voc);
        var vocTrain = ReadSplitList(Path.Combine(voc, "ImageSets", "Segmentation", "train.txt"));
        var sbdTrain = ReadSplitList(Path.Combine(sbd, "train.txt"));
        var sbdVal = ReadSplitList(Path.Combine(sbd, "val.txt"));
        var all = vocTrain.Concat(sbdTrain).Concat(sbdVal).ToList();
        int removedVal = all.Count(valIds.Contains);
        var ids = Dedupe(all.Where(id => !valIds.Contains(id)), out int duplicates);
        var vocMasks = new HashSet<string>(vocTrain, StringComparer.Ordinal);
        var entries = ids.Select(id =>
        {
            var vocImage = Path.Combine(voc, "JPEGImages", id + ".jpg");
            var image = File.Exists(vocImage) ? vocImage : Path.Combine(sbd, "img", id + ".jpg");
            var mask = vocMasks.Contains(id) ? Path.Combine(voc, "SegmentationClass", id + ".png") : Path.Combine(sbd, "cls", id + ".mat");
            return new SampleEntry(id, image, mask);
        }).ToList();
        var text = $"trainaug: {entries.Count} images (VOC train {vocTrain.Count} + SBD train {sbdTrain.Count} + SBD val {sbdVal.Count}; " +
                   $"{removedVal} in VOC val removed, {duplicates} duplicates removed)";
        log.LogInformation("trainaug: {Images} images (VOC train {VocTrain} + SBD train {SbdTrain} + SBD val {SbdVal}; {ValRemoved} in VOC val removed, {Duplicates} duplicates removed)",
            entries.Count, vocTrain.Count, sbdTrain.Count, sbdVal.Count, removedVal, duplicates);
        return new FileDataset("pascal/trainaug", entries, names, o.IgnoreValue, summary: text);
    }

    private static List<string> Dedupe(IEnumerable<string> ids, out int duplicates)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var kept = new List<string>();
        duplicates = 0;
        foreach (var id in ids)
            if (seen.Add(id)) kept.Add(id);
            else duplicates++;
        return kept;
    }

    // ------------------------------------------------------------------ SBD
    /// <summary>SBD's dataset folder (with cls/ and img/): SbdRoot, or searched in and next to the data root.</summary>
    public static string ResolveSbdRoot(DataOptions o, string root, string? voc = null)
    {
        var candidates = new List<string>();
        if (o.SbdRoot != null) candidates.AddRange(new[] { o.SbdRoot, Path.Combine(o.SbdRoot, "dataset"), Path.Combine(o.SbdRoot, "benchmark_RELEASE", "dataset") });
        else
        {
            candidates.AddRange(new[]
            {
                root, Path.Combine(root, "dataset"), Path.Combine(root, "benchmark_RELEASE", "dataset"), Path.Combine(root, "SBD", "benchmark_RELEASE", "dataset"),
                Path.Combine(root, "..", "benchmark_RELEASE", "dataset"), Path.Combine(root, "..", "SBD", "benchmark_RELEASE", "dataset"),
            });
            if (voc != null) candidates.Add(Path.Combine(voc, "..", "..", "benchmark_RELEASE", "dataset"));
        }
        foreach (var c in candidates)
            if (Directory.Exists(Path.Combine(c, "cls")))
                return Path.GetFullPath(c);
        throw new UserException($"SBD not found: no benchmark_RELEASE/dataset (with cls/, img/, train.txt, val.txt) in or next to {o.SbdRoot ?? root}; " +
            "pass --sbd-root, or use a SegmentationClassAug folder with train_aug.txt");
    }

    private static FileDataset OpenSbdOnly(DataOptions o, string split)
    {
        var root = RequireRoot(o);
        var sbd = ResolveSbdRoot(o, root);
        var names = o.ClassNames ?? VocClasses.Names.ToArray();
        IEnumerable<string> ids = split switch
        {
            "train" => ReadSplitList(Path.Combine(sbd, "train.txt")),
            "val" => ReadSplitList(Path.Combine(sbd, "val.txt")),
            "trainval" => Dedupe(ReadSplitList(Path.Combine(sbd, "train.txt")).Concat(ReadSplitList(Path.Combine(sbd, "val.txt"))), out _),
            _ => throw new UserException("split trainaug needs the VOC tree: use --dataset pascal --use-sbd"),
        };
        return new FileDataset($"sbd/{split}", ids.Select(id => new SampleEntry(id, Path.Combine(sbd, "img", id + ".jpg"), Path.Combine(sbd, "cls", id + ".mat"))),
            names, o.IgnoreValue);
    }

    // ------------------------------------------------------------------ folder pairs
    private static readonly string[] ImageExtensions = { ".jpg", ".jpeg", ".png" };
    private static readonly string[] MaskExtensions = { ".png", ".jpg", ".jpeg" };

    /// <summary>
    /// images/ and masks/ matched by file stem. The split is root/SPLIT/{images,masks} when present,
    /// else the ids in root/SPLIT.txt, else a fixed rule over the sorted stems (every 5th is val;
    /// trainval is all). Default classes: background, person.
    /// </summary>
    private static FileDataset OpenFolder(DataOptions o, string root, string split)
    {
        var names = o.ClassNames ?? ClassNames.Portrait;
        string dir = root;
        if (Directory.Exists(Path.Combine(root, split, "images"))) dir = Path.Combine(root, split);
        var imagesDir = Path.Combine(dir, "images");
        var masksDir = Path.Combine(dir, "masks");
        if (!Directory.Exists(imagesDir)) throw new UserException($"folder data set: {imagesDir} does not exist (expected images/ and masks/ under {root})");
        if (!Directory.Exists(masksDir)) throw new UserException($"folder data set: {masksDir} does not exist (expected images/ and masks/ under {root})");
        var images = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var f in Directory.EnumerateFiles(imagesDir))
            if (ImageExtensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                images.TryAdd(Path.GetFileNameWithoutExtension(f), f);
        var masks = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var f in Directory.EnumerateFiles(masksDir))
            if (MaskExtensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                masks.TryAdd(Path.GetFileNameWithoutExtension(f), f);
        List<string> ids;
        var listFile = Path.Combine(root, split + ".txt");
        if (dir != root) ids = images.Keys.ToList();
        else if (File.Exists(listFile)) ids = ReadSplitList(listFile);
        else
        {
            var all = images.Keys.ToList();
            ids = split switch
            {
                "val" => all.Where((_, i) => i % 5 == 4).ToList(),
                "train" or "trainaug" => all.Where((_, i) => i % 5 != 4).ToList(),
                _ => all,
            };
        }
        if (ids.Count == 0) throw new DataException(imagesDir, $"no images for split {split}");
        // Unmatched files stay in the list with the expected path, so loading (or data check) names them.
        var entries = ids.Select(id => new SampleEntry(id,
            images.TryGetValue(id, out var img) ? img : Path.Combine(imagesDir, id + ".jpg"),
            masks.TryGetValue(id, out var m) ? m : Path.Combine(masksDir, id + ".png")));
        return new FileDataset($"folder/{split}", entries, names, o.IgnoreValue, binaryMasks: true);
    }

    // ------------------------------------------------------------------ split lists
    /// <summary>
    /// Reads ids, one per line (blank lines and # comments skipped). A line may also be a pair of
    /// paths ("/JPEGImages/x.jpg /SegmentationClassAug/x.png"): the first path's stem is the id.
    /// </summary>
    public static List<string> ReadSplitList(string path)
    {
        if (!File.Exists(path)) throw new DataException(path, "split list not found");
        string[] lines;
        try { lines = File.ReadAllLines(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new DataException(path, "cannot read split list: " + e.Message, e); }
        var ids = new List<string>(lines.Length);
        foreach (var raw in lines)
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var first = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)[0];
            ids.Add(first.Contains('/') || first.Contains('.') ? Path.GetFileNameWithoutExtension(first) : first);
        }
        if (ids.Count == 0) throw new DataException(path, "split list is empty");
        return ids;
    }
}
