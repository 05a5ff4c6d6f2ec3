namespace DeepLabTorch.Data;

/// <summary>
/// The face-parsing references' colour jitter, on an RGB byte image in place: brightness, then contrast,
/// then saturation, each by a factor drawn from [1 - s, 1 + s] (s the strength). Each step blends the
/// image with a degenerate one by the factor, clipped to bytes: black (brightness), the image's mean gray
/// level (contrast), the image's own gray version (saturation), as PIL's ImageEnhance does.
/// </summary>
internal static class ColorJitter
{
    /// <summary>The three factors for one sample, from its own random stream.</summary>
    public static (double Brightness, double Contrast, double Saturation) Draw(double strength, ref SampleRandom rng)
    {
        double lo = Math.Max(1 - strength, 0), hi = 1 + strength;
        double b = lo + (hi - lo) * rng.NextDouble();
        double c = lo + (hi - lo) * rng.NextDouble();
        double s = lo + (hi - lo) * rng.NextDouble();
        return (b, c, s);
    }

    public static void Apply(Span<byte> rgb, double brightness, double contrast, double saturation)
    {
        if (rgb.Length % 3 != 0) throw new ArgumentException("colour jitter: an RGB image has 3 bytes per pixel");
        // Brightness: blend with black.
        for (int i = 0; i < rgb.Length; i++) rgb[i] = Blend(0, rgb[i], brightness);
        // Contrast: blend with the mean of the gray image, rounded to a level.
        long sum = 0;
        for (int i = 0; i < rgb.Length; i += 3) sum += Gray(rgb[i], rgb[i + 1], rgb[i + 2]);
        int pixels = rgb.Length / 3;
        int mean = pixels == 0 ? 0 : (int)((double)sum / pixels + 0.5);
        for (int i = 0; i < rgb.Length; i++) rgb[i] = Blend(mean, rgb[i], contrast);
        // Saturation: blend with the pixel's own gray level.
        for (int i = 0; i < rgb.Length; i += 3)
        {
            int g = Gray(rgb[i], rgb[i + 1], rgb[i + 2]);
            rgb[i] = Blend(g, rgb[i], saturation);
            rgb[i + 1] = Blend(g, rgb[i + 1], saturation);
            rgb[i + 2] = Blend(g, rgb[i + 2], saturation);
        }
    }

    /// <summary>ITU-R 601-2 luma as PIL computes its "L" mode: fixed point, rounded.</summary>
    internal static int Gray(int r, int g, int b) => (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;

    /// <summary>degenerate + factor * (value - degenerate) in single precision, clipped and truncated to a byte, as PIL's blend.</summary>
    private static byte Blend(int degenerate, int value, double factor)
    {
        float v = degenerate + (float)factor * (value - degenerate);
        return v <= 0f ? (byte)0 : v >= 255f ? (byte)255 : (byte)v;
    }
}
