using System.Globalization;
using DeepLabTorch.Data.Png;

namespace DeepLabTorch.Data;

/// <summary>
/// CelebAMask-HQ in its download layout: <c>CelebA-HQ-img/&lt;id&gt;.jpg</c> (1024², ids 0-29999) and one
/// black-and-white 512² mask per face part, <c>CelebAMask-HQ-mask-anno/&lt;id / 2000&gt;/&lt;id:D5&gt;_&lt;part&gt;.png</c>.
/// The part masks are merged into one label map as the face-parsing reference prepares them: label k + 1
/// for part k of <see cref="Parts"/>, in that order, a later part overwriting an earlier one, 0 elsewhere.
/// </summary>
internal static class CelebAMaskHq
{
    public const string Name = "celebamask-hq";
    public const string ImageFolder = "CelebA-HQ-img";
    public const string AnnotationFolder = "CelebAMask-HQ-mask-anno";
    public const string MappingFile = "CelebA-HQ-to-CelebA-mapping.txt";
    public const string PartitionFile = "list_eval_partition.txt";

    /// <summary>The 18 parts in the reference's merge order; part k has label k + 1.</summary>
    public static readonly string[] Parts =
    {
        "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
        "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat",
    };

    /// <summary>background, then the parts: 19 classes.</summary>
    public static IReadOnlyList<string> ClassNames { get; } = new[] { "background" }.Concat(Parts).ToArray();

    /// <summary>Labels that trade places when the image is mirrored: the left and right brows, eyes and ears.</summary>
    public static IReadOnlyList<(byte Left, byte Right)> MirrorPairs { get; } = new (byte, byte)[] { (2, 3), (4, 5), (7, 8) };

    /// <summary>The folder holding CelebA-HQ-img/ and CelebAMask-HQ-mask-anno/: the root itself or root/CelebAMask-HQ.</summary>
    public static string ResolveRoot(string root)
    {
        foreach (var c in new[] { root, Path.Combine(root, "CelebAMask-HQ") })
            if (Directory.Exists(Path.Combine(c, ImageFolder)) && Directory.Exists(Path.Combine(c, AnnotationFolder)))
                return c;
        throw new UserException($"no CelebAMask-HQ tree under {root} (expected {ImageFolder}/ and {AnnotationFolder}/ in it or in CelebAMask-HQ/)");
    }

    public static string ImagePath(string root, int id) => Path.Combine(root, ImageFolder, id.ToString(CultureInfo.InvariantCulture) + ".jpg");

    /// <summary>Where part <paramref name="part"/> of face <paramref name="id"/> is: 2000 faces per numbered folder.</summary>
    public static string PartPath(string root, int id, string part) =>
        Path.Combine(root, AnnotationFolder, (id / 2000).ToString(CultureInfo.InvariantCulture), id.ToString("D5", CultureInfo.InvariantCulture) + "_" + part + ".png");

    /// <summary>The face ids with an image, ascending.</summary>
    public static List<int> ImageIds(string root)
    {
        var ids = new List<int>();
        foreach (var f in Directory.EnumerateFiles(Path.Combine(root, ImageFolder), "*.jpg"))
            if (int.TryParse(Path.GetFileNameWithoutExtension(f), NumberStyles.None, CultureInfo.InvariantCulture, out var id)) ids.Add(id);
        ids.Sort();
        return ids;
    }

    /// <summary>
    /// The merged label map of one face (labels 0-18) and its size. Each existing part file sets its label
    /// where it is white; a missing file is a part the face does not show. With no part file at all, the
    /// face has no annotation: a DataException, since a map of background only would teach the wrong thing.
    /// </summary>
    public static (byte[] Labels, int Height, int Width) Merge(string root, int id)
    {
        byte[]? labels = null;
        int height = 0, width = 0;
        string? first = null;
        for (int k = 0; k < Parts.Length; k++)
        {
            var path = PartPath(root, id, Parts[k]);
            if (!File.Exists(path)) continue;
            var png = ReadPart(path);
            if (labels is null)
            {
                (height, width, first) = (png.Height, png.Width, path);
                labels = new byte[checked(height * width)];
            }
            else if (png.Height != height || png.Width != width)
            {
                throw new DataException(path, $"part mask is {png.Width}x{png.Height} (WxH) but {Path.GetFileName(first)} is {width}x{height}");
            }
            LabelWhitePixels(path, png, labels, (byte)(k + 1));
        }
        if (labels is null)
            throw new DataException(PartPath(root, id, Parts[0]), $"face {id} has no part mask at all (none of {string.Join(", ", Parts)})");
        return (labels, height, width);
    }

    private static PngImage ReadPart(string path)
    {
        var bytes = ImageCodec.ReadFile(path);
        if (!PngReader.IsPng(bytes)) throw new DataException(path, "not a PNG file");
        return PngReader.Read(path, bytes);
    }

    /// <summary>
    /// Sets label where a part mask is white: every colour sample at its maximum (gray, RGB with or without
    /// alpha, or a palette entry of (255, 255, 255)). On the data set's black-and-white files these are exactly
    /// the pixels the reference keeps (PIL's conversion to its web palette, index 225).
    /// </summary>
    private static void LabelWhitePixels(string path, PngImage png, byte[] labels, byte label)
    {
        var h = png.Header;
        long n = labels.Length;
        if (h.ColorType == PngColorType.Palette)
        {
            var palette = png.Palette ?? throw new DataException(path, "palette PNG without a palette");
            var isWhite = new bool[256];
            for (int e = 0; e * 3 + 2 < palette.Length && e < 256; e++)
                isWhite[e] = palette[3 * e] == 255 && palette[3 * e + 1] == 255 && palette[3 * e + 2] == 255;
            for (long i = 0; i < n; i++)
                if (isWhite[png.Samples[i]]) labels[i] = label;
            return;
        }
        int max = (1 << h.BitDepth) - 1;
        int colours = h.ColorType is PngColorType.Rgb or PngColorType.Rgba ? 3 : 1;
        for (long i = 0; i < n; i++)
        {
            bool all = true;
            for (int c = 0; c < colours && all; c++) all = png.Sample(i, c) == max;
            if (all) labels[i] = label;
        }
    }

    /// <summary>
    /// The ids of a split. The official split, when both files are found (at the root, next to it, or in
    /// its Eval/ folder): CelebA-HQ-to-CelebA-mapping.txt gives each face its CelebA file, and CelebA's
    /// list_eval_partition.txt that file's partition (0 train, 1 val, 2 test). Else a split file
    /// (root/&lt;split&gt;.txt, one id per line). Else every image, for every split, as the reference trains.
    /// </summary>
    public static (List<int> Ids, string Source) SplitIds(string root, string split)
    {
        var all = ImageIds(root);
        var listed = Path.Combine(root, split + ".txt");
        if (FindNear(root, MappingFile) is { } mapping && FindNear(root, PartitionFile) is { } partition)
        {
            var wanted = split switch
            {
                "train" => new[] { 0 },
                "val" => new[] { 1 },
                "test" => new[] { 2 },
                "trainval" => new[] { 0, 1 },
                _ => throw new UserException($"{Name} has no split '{split}' (expected train, val, test or trainval)"),
            };
            var partOf = ReadPartition(partition);
            var origOf = ReadMapping(mapping);
            var have = all.ToHashSet();
            var ids = origOf.Where(kv => have.Contains(kv.Key) && partOf.TryGetValue(kv.Value, out var p) && wanted.Contains(p))
                .Select(kv => kv.Key).OrderBy(x => x).ToList();
            return (ids, $"the official split ({Path.GetFileName(mapping)}, {Path.GetFileName(partition)})");
        }
        if (File.Exists(listed))
        {
            var ids = new List<int>();
            foreach (var (line, number) in File.ReadLines(listed).Select((l, i) => (l.Trim(), i + 1)))
            {
                if (line.Length == 0) continue;
                var word = Path.GetFileNameWithoutExtension(line);
                if (!int.TryParse(word, NumberStyles.None, CultureInfo.InvariantCulture, out var id))
                    throw new DataException(listed, $"line {number}: '{line}' is not a face id");
                ids.Add(id);
            }
            return (ids, listed);
        }
        return (all, "every image (no split files; the reference trains on all of them)");
    }

    private static string? FindNear(string root, string name)
    {
        var parent = Path.GetDirectoryName(Path.GetFullPath(root)) ?? root;
        return new[] { Path.Combine(root, name), Path.Combine(root, "Eval", name), Path.Combine(parent, name), Path.Combine(parent, "Eval", name) }
            .FirstOrDefault(File.Exists);
    }

    /// <summary>CelebA's "000001.jpg 0" lines: file → partition.</summary>
    private static Dictionary<string, int> ReadPartition(string path)
    {
        var map = new Dictionary<string, int>(StringComparer.Ordinal);
        int number = 0;
        foreach (var raw in File.ReadLines(path))
        {
            number++;
            var w = raw.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (w.Length == 0) continue;
            if (w.Length != 2 || !int.TryParse(w[1], NumberStyles.None, CultureInfo.InvariantCulture, out var p) || p > 2)
                throw new DataException(path, $"line {number}: expected 'FILE PARTITION' with a partition of 0, 1 or 2, got '{raw.Trim()}'");
            map[w[0]] = p;
        }
        return map;
    }

    /// <summary>"idx orig_idx orig_file" rows after a header: face id → CelebA file.</summary>
    private static Dictionary<int, string> ReadMapping(string path)
    {
        var map = new Dictionary<int, string>();
        int number = 0;
        foreach (var raw in File.ReadLines(path))
        {
            number++;
            var w = raw.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (w.Length == 0 || (number == 1 && w[0] == "idx")) continue;
            if (w.Length != 3 || !int.TryParse(w[0], NumberStyles.None, CultureInfo.InvariantCulture, out var id))
                throw new DataException(path, $"line {number}: expected 'IDX ORIG_IDX ORIG_FILE', got '{raw.Trim()}'");
            map[id] = w[2];
        }
        return map;
    }
}

/// <summary>
/// A split of CelebAMask-HQ: each sample is the face image, resized to its label map's size (the 1024²
/// images to the 512² masks, bilinear, as the reference does), and the merged label map.
/// </summary>
internal sealed class CelebAMaskHqDataset : ISegmentationDataset
{
    private readonly string _root;
    private readonly int[] _ids;

    public CelebAMaskHqDataset(string root, string split, IReadOnlyList<string>? classNames = null)
    {
        _root = CelebAMaskHq.ResolveRoot(root);
        var (ids, source) = CelebAMaskHq.SplitIds(_root, split);
        _ids = ids.ToArray();
        Name = $"{CelebAMaskHq.Name}/{split}";
        ClassNames = classNames ?? CelebAMaskHq.ClassNames;
        if (ClassNames.Count != CelebAMaskHq.ClassNames.Count)
            throw new UserException($"{CelebAMaskHq.Name} has {CelebAMaskHq.ClassNames.Count} classes; {ClassNames.Count} class names were given");
        Summary = $"{Name}: {_ids.Length} faces from {source}";
    }

    public string Name { get; }
    public int Count => _ids.Length;
    public IReadOnlyList<string> ClassNames { get; }
    public int IgnoreIndex => 255;
    public string Summary { get; }
    public IReadOnlyList<int> Ids => _ids;

    public string ImagePath(int index) => CelebAMaskHq.ImagePath(_root, _ids[index]);

    public SegmentationSample Load(int index)
    {
        var id = _ids[index];
        var (labels, h, w) = CelebAMaskHq.Merge(_root, id);
        var (rgb, ih, iw) = ImageCodec.DecodeImage(CelebAMaskHq.ImagePath(_root, id));
        if (ih != h || iw != w) rgb = ImageCodec.ResizeBilinear(rgb, ih, iw, 3, h, w);
        return new SegmentationSample { Id = id.ToString(CultureInfo.InvariantCulture), Height = h, Width = w, Image = rgb, Mask = labels };
    }
}
