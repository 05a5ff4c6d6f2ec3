using DeepLabTorch.Data.Png;

namespace DeepLabTorch.Data;

/// <summary>
/// Today's mask rules over a decoded PNG: palette → indices; gray (1-16 bit) → values, 16-bit only when they fit
/// a byte; gray+alpha → the gray; RGB(A) → the gray level when every pixel is gray, else the index of each
/// pixel's colour in the VOC colour map (a mask saved as RGB). Anything else is a <see cref="DataException"/>.
/// </summary>
internal static class MaskDecoder
{
    private static readonly Lazy<Dictionary<int, byte>> VocLookup = new(BuildVocLookup);

    public static byte[] ToIndices(string name, PngImage png)
    {
        var header = png.Header;
        long n = (long)png.Width * png.Height;
        if (header.Channels == 1 && header.BitDepth <= 8) return png.Samples;
        if (header.Channels <= 2) return GrayChannel(name, png, n);
        return AllGray(png, n) ? GrayLevels(png, n) : VocIndices(name, png, n);
    }

    private static byte[] GrayChannel(string name, PngImage png, long n)
    {
        var output = GC.AllocateUninitializedArray<byte>((int)n);
        for (long i = 0; i < n; i++)
        {
            int v = png.Sample(i, 0);
            if (v > 255) throw new DataException(name, $"16-bit mask value {v} does not fit a class index (0-255)");
            output[i] = (byte)v;
        }
        return output;
    }

    // The whole-image test matters because VOC's car colour (128,128,128) is itself gray.
    private static bool AllGray(PngImage png, long n)
    {
        for (long i = 0; i < n; i++)
        {
            int r = png.Sample(i, 0);
            if (r != png.Sample(i, 1) || r != png.Sample(i, 2)) return false;
        }
        return true;
    }

    private static byte[] GrayLevels(PngImage png, long n)
    {
        var output = GC.AllocateUninitializedArray<byte>((int)n);
        int shift = png.Header.BitDepth == 16 ? 8 : 0;
        for (long i = 0; i < n; i++) output[i] = (byte)(png.Sample(i, 0) >> shift);
        return output;
    }

    private static byte[] VocIndices(string name, PngImage png, long n)
    {
        var lookup = VocLookup.Value;
        var output = GC.AllocateUninitializedArray<byte>((int)n);
        int shift = png.Header.BitDepth == 16 ? 8 : 0;
        for (long i = 0; i < n; i++)
        {
            int r = png.Sample(i, 0) >> shift, g = png.Sample(i, 1) >> shift, b = png.Sample(i, 2) >> shift;
            if (!lookup.TryGetValue((r << 16) | (g << 8) | b, out byte index))
                throw new DataException(name, $"colour ({r},{g},{b}) at pixel (x={i % png.Width}, y={i / png.Width}) is not a VOC palette colour: " +
                    "an RGB mask must use the VOC colour map or be gray");
            output[i] = index;
        }
        return output;
    }

    private static Dictionary<int, byte> BuildVocLookup()
    {
        var map = Palette.Voc;
        var lookup = new Dictionary<int, byte>(256);
        for (int i = 0; i < 256; i++) lookup.TryAdd((map[3 * i] << 16) | (map[3 * i + 1] << 8) | map[3 * i + 2], (byte)i);
        return lookup;
    }
}
