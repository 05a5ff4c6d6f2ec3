namespace DeepLabTorch.Data;

/// <summary>
/// Cityscapes: <c>leftImg8bit/&lt;split&gt;/&lt;city&gt;/*_leftImg8bit.png</c> with the fine labels in
/// <c>gtFine/&lt;split&gt;/&lt;city&gt;/*_gtFine_labelIds.png</c> (the standard layout) or under
/// <c>gtFine_trainvaltest/gtFine/</c> (the reference's). The 34 label ids map to the 19 training classes,
/// every other id to 255 (void), as the reference encodes them.
/// </summary>
internal static class Cityscapes
{
    public const string Name = "cityscapes";

    /// <summary>The 19 training classes in train-id order.</summary>
    public static IReadOnlyList<string> ClassNames { get; } = new[]
    {
        "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation", "terrain",
        "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
    };

    /// <summary>The label ids of the 19 classes, in train-id order; every other id in 0-33 is void.</summary>
    public static IReadOnlyList<int> ValidIds { get; } = new[] { 7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33 };

    /// <summary>Label id (0-33) → train id (0-18) or 255.</summary>
    public static byte[] TrainIds { get; } = BuildTable();

    private static byte[] BuildTable()
    {
        var table = Enumerable.Repeat((byte)255, 34).ToArray();
        for (int i = 0; i < ValidIds.Count; i++) table[ValidIds[i]] = (byte)i;
        return table;
    }

    /// <summary>The folder holding gtFine/&lt;split&gt;: root/gtFine, or the reference's root/gtFine_trainvaltest/gtFine.</summary>
    public static string LabelRoot(string root)
    {
        foreach (var c in new[] { Path.Combine(root, "gtFine"), Path.Combine(root, "gtFine_trainvaltest", "gtFine") })
            if (Directory.Exists(c)) return c;
        throw new UserException($"no Cityscapes labels under {root} (expected gtFine/ or gtFine_trainvaltest/gtFine/)");
    }
}

/// <summary>A split of Cityscapes: each image with its label ids mapped to train ids.</summary>
internal sealed class CityscapesDataset : ISegmentationDataset
{
    private readonly (string Id, string Image, string Label)[] _entries;

    public CityscapesDataset(string root, string split)
    {
        if (split is not ("train" or "val" or "test")) throw new UserException($"{Cityscapes.Name} has no split '{split}' (expected train, val or test)");
        var images = Path.Combine(root, "leftImg8bit", split);
        if (!Directory.Exists(images)) throw new UserException($"no Cityscapes images at {images} (expected leftImg8bit/{split}/<city>/*_leftImg8bit.png)");
        var labels = Path.Combine(Cityscapes.LabelRoot(root), split);
        _entries = Directory.EnumerateFiles(images, "*_leftImg8bit.png", SearchOption.AllDirectories)
            .Order(StringComparer.Ordinal)
            .Select(image =>
            {
                var city = Path.GetFileName(Path.GetDirectoryName(image)!);
                var stem = Path.GetFileName(image)[..^"_leftImg8bit.png".Length];
                return (stem, image, Path.Combine(labels, city, stem + "_gtFine_labelIds.png"));
            })
            .ToArray();
        if (_entries.Length == 0) throw new DataException(images, $"no *_leftImg8bit.png images for split {split}");
        Name = $"{Cityscapes.Name}/{split}";
    }

    public string Name { get; }
    public int Count => _entries.Length;
    public IReadOnlyList<string> ClassNames => Cityscapes.ClassNames;
    public int IgnoreIndex => 255;

    public SegmentationSample Load(int index)
    {
        var (id, imagePath, labelPath) = _entries[index];
        var (rgb, h, w) = ImageCodec.DecodeImage(imagePath);
        var (labels, lh, lw) = ImageCodec.DecodeMask(labelPath);
        if (lh != h || lw != w) throw new DataException(labelPath, $"labels are {lw}x{lh} (WxH) but the image {imagePath} is {w}x{h}");
        var table = Cityscapes.TrainIds;
        for (int i = 0; i < labels.Length; i++)
        {
            var v = labels[i];
            if (v >= table.Length)
                throw new DataException(labelPath, $"label id {v} at (x={i % w}, y={i / w}) is outside Cityscapes' 0-33");
            labels[i] = table[v];
        }
        return new SegmentationSample { Id = id, Height = h, Width = w, Image = rgb, Mask = labels };
    }
}
