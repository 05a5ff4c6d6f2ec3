namespace DeepLabTorch.Data;

/// <summary>One listed sample: its id, image file and mask file (.png, .jpg or SBD .mat).</summary>
internal sealed record SampleEntry(string Id, string ImagePath, string MaskPath);

/// <summary>
/// A split backed by image and mask files. Load decodes both, checks that their sizes agree and maps
/// the mask values to class indices (the ignore value becomes 255; anything else out of range is an
/// error naming the file, the value and a pixel).
/// </summary>
internal sealed class FileDataset : ISegmentationDataset
{
    private readonly SampleEntry[] _entries;
    private readonly bool _binaryMasks;
    private readonly int _ignoreValue;

    /// <param name="binaryMasks">Two-class folder sets: a mask with no value 1 but values above 1 (0/255
    /// or anti-aliased mattes) is thresholded at 128 into {0, 1}.</param>
    public FileDataset(string name, IEnumerable<SampleEntry> entries, IReadOnlyList<string> classNames, int ignoreValue = 255,
        bool binaryMasks = false, string? summary = null)
    {
        Name = name;
        _entries = entries.ToArray();
        ClassNames = classNames;
        _ignoreValue = ignoreValue;
        _binaryMasks = binaryMasks && classNames.Count == 2;
        Summary = summary ?? $"{name}: {_entries.Length} images";
    }

    public string Name { get; }
    public int Count => _entries.Length;
    public IReadOnlyList<string> ClassNames { get; }
    public int NumClasses => ClassNames.Count;
    public int IgnoreIndex => 255;
    public IReadOnlyList<SampleEntry> Entries => _entries;
    /// <summary>One line for the log: the split, its count and where it came from.</summary>
    public string Summary { get; }

    public SegmentationSample Load(int index)
    {
        var e = _entries[index];
        var (rgb, h, w) = ImageCodec.DecodeImage(e.ImagePath);
        var (mask, mh, mw) = e.MaskPath.EndsWith(".mat", StringComparison.OrdinalIgnoreCase)
            ? MatFile.ReadSbdSegmentation(e.MaskPath)
            : ImageCodec.DecodeMask(e.MaskPath);
        if (mh != h || mw != w)
            throw new DataException(e.MaskPath, $"mask is {mw}x{mh} (WxH) but its image {e.ImagePath} is {w}x{h}");
        MapMask(mask, w, e.MaskPath);
        return new SegmentationSample { Id = e.Id, Height = h, Width = w, Image = rgb, Mask = mask };
    }

    /// <summary>Maps file values to class indices in place; throws DataException on a value that is neither.</summary>
    internal void MapMask(byte[] mask, int width, string path)
    {
        Span<int> hist = stackalloc int[256];
        foreach (var v in mask) hist[v]++;
        if (_binaryMasks && hist[1] == 0)
        {
            bool above = false;
            for (int v = 2; v < 256; v++) above |= hist[v] > 0;
            if (above)
            {
                for (int i = 0; i < mask.Length; i++) mask[i] = mask[i] >= 128 ? (byte)1 : (byte)0;
                return;
            }
        }
        Span<byte> lut = stackalloc byte[256];
        Span<bool> bad = stackalloc bool[256];
        bool anyBad = false;
        for (int v = 0; v < 256; v++)
        {
            if (v == _ignoreValue) lut[v] = 255;
            else if (v < NumClasses) lut[v] = (byte)v;
            else { bad[v] = true; anyBad |= hist[v] > 0; }
        }
        if (anyBad)
        {
            int largest = 0;
            for (int v = 255; v >= 0; v--)
                if (bad[v] && hist[v] > 0) { largest = v; break; }
            for (int i = 0; i < mask.Length; i++)
                if (bad[mask[i]])
                    throw new DataException(path, $"mask value {mask[i]} at (x={i % width}, y={i / width}) is neither a class (0-{NumClasses - 1}) " +
                        $"nor the ignore value {_ignoreValue} ({hist[mask[i]]} such pixels)") { LabelOutOfRange = largest };
        }
        if (_ignoreValue == 255) return; // identity for every valid value
        for (int i = 0; i < mask.Length; i++) mask[i] = lut[mask[i]];
    }
}
