namespace DeepLabTorch.Inference;

/// <summary>
/// Recolouring parts of a parsed face (hair, lips), as the face-parsing reference's makeup demo does it: in
/// the pixels of the chosen classes the hue is replaced by the target colour's (and, for lips, the saturation
/// too), while the value, and with it the shading and texture, stays the pixel's own. Other pixels are untouched.
/// </summary>
internal static class Recolor
{
    /// <summary>A recoloured copy of the RGB image (HWC bytes) where classes[i] is one of parts.</summary>
    /// <param name="takeSaturation">Also take the colour's saturation (the reference does so for lips).</param>
    public static byte[] Apply(byte[] rgb, byte[] classes, IReadOnlyCollection<int> parts, (byte R, byte G, byte B) colour, bool takeSaturation)
    {
        if (rgb.Length != 3 * classes.Length) throw new ArgumentException($"{rgb.Length} image bytes for a {classes.Length}-pixel class map");
        var (th, ts, _) = ToHsv(colour.R, colour.G, colour.B);
        var chosen = new bool[256];
        foreach (var p in parts) if (p is >= 0 and < 256) chosen[p] = true;
        var output = (byte[])rgb.Clone();
        for (int i = 0; i < classes.Length; i++)
        {
            if (!chosen[classes[i]]) continue;
            var (_, s, v) = ToHsv(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]);
            var (r, g, b) = FromHsv(th, takeSaturation ? ts : s, v);
            output[3 * i] = r;
            output[3 * i + 1] = g;
            output[3 * i + 2] = b;
        }
        return output;
    }

    /// <summary>Hue in [0, 360), saturation and value in [0, 1].</summary>
    internal static (double H, double S, double V) ToHsv(byte r8, byte g8, byte b8)
    {
        double r = r8 / 255.0, g = g8 / 255.0, b = b8 / 255.0;
        double max = Math.Max(r, Math.Max(g, b)), min = Math.Min(r, Math.Min(g, b)), d = max - min;
        double h = d == 0 ? 0 : max == r ? 60 * (((g - b) / d) % 6) : max == g ? 60 * ((b - r) / d + 2) : 60 * ((r - g) / d + 4);
        if (h < 0) h += 360;
        return (h, max == 0 ? 0 : d / max, max);
    }

    internal static (byte R, byte G, byte B) FromHsv(double h, double s, double v)
    {
        double c = v * s, x = c * (1 - Math.Abs(h / 60 % 2 - 1)), m = v - c;
        var (r, g, b) = (int)(h / 60) switch
        {
            0 => (c, x, 0.0),
            1 => (x, c, 0.0),
            2 => (0.0, c, x),
            3 => (0.0, x, c),
            4 => (x, 0.0, c),
            _ => (c, 0.0, x),
        };
        static byte B(double t) => (byte)Math.Clamp((int)Math.Round(t * 255), 0, 255);
        return (B(r + m), B(g + m), B(b + m));
    }
}
