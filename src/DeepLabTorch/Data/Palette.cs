namespace DeepLabTorch.Data;

/// <summary>Colour maps for palette PNGs.</summary>
internal static class Palette
{
    private static readonly Lazy<byte[]> VocMap = new(BuildVoc);

    /// <summary>The PASCAL VOC colour map: 256 RGB triples (768 bytes); index 255 (void) is (224,224,192).</summary>
    public static byte[] Voc => (byte[])VocMap.Value.Clone();

    // The one VOC map of the code base (the PNG writer's default, the RGB-mask lookup); tests check it against known colours.
    private static byte[] BuildVoc()
    {
        var map = new byte[768];
        for (int i = 0; i < 256; i++)
        {
            int r = 0, g = 0, b = 0, c = i;
            for (int j = 0; j < 8; j++)
            {
                r |= ((c >> 0) & 1) << (7 - j);
                g |= ((c >> 1) & 1) << (7 - j);
                b |= ((c >> 2) & 1) << (7 - j);
                c >>= 3;
            }
            map[3 * i] = (byte)r;
            map[3 * i + 1] = (byte)g;
            map[3 * i + 2] = (byte)b;
        }
        return map;
    }
}

/// <summary>The 21 PASCAL VOC classes, background first.</summary>
internal static class VocClasses
{
    private static readonly string[] All =
    {
        "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
        "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
    };

    public static IReadOnlyList<string> Names { get; } = Array.AsReadOnly(All);

    public const int Person = 15;
}

/// <summary>
/// Every class-name fact in one place: the names a model or data set gets when its file names none, and which
/// class is the person (predict's --prob-class default, matte's --person-class default).
/// </summary>
internal static class ClassNames
{
    public const string Person = "person";

    /// <summary>A portrait (2-class) model's and the folder data set's classes.</summary>
    public static IReadOnlyList<string> Portrait { get; } = Array.AsReadOnly(new[] { "background", Person });

    /// <summary>VOC names for 21 classes, background/person for 2, else background, class1..classN-1.</summary>
    public static IReadOnlyList<string> Default(int numClasses) => numClasses switch
    {
        21 => VocClasses.Names,
        2 => Portrait,
        _ => Enumerable.Range(0, numClasses).Select(i => i == 0 ? "background" : $"class{i}").ToArray(),
    };

    /// <summary>The person's index by name when the names have it, else class 1 (a binary model's foreground).</summary>
    public static int PersonIndex(IReadOnlyList<string> names)
    {
        for (int i = 0; i < names.Count; i++)
            if (names[i].Equals(Person, StringComparison.OrdinalIgnoreCase)) return i;
        return Math.Min(1, names.Count - 1);
    }

    /// <summary>The person's index from the class count alone: 1 for a portrait model, VOC's 15 otherwise, 0 for a one-channel model.</summary>
    public static int PersonIndex(long numClasses) => numClasses switch
    {
        1 => 0,
        2 => 1,
        _ => VocClasses.Person,
    };
}
