namespace DeepLabTorch.Data;

/// <summary>Colour maps for palette PNGs.</summary>
public static class Palette
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
public static class VocClasses
{
    private static readonly string[] All =
    {
        "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
        "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
    };

    public static IReadOnlyList<string> Names { get; } = Array.AsReadOnly(All);

    public const int Person = 15;
}
