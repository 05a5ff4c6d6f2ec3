using DeepLabTorch.Data;
using DeepLabTorch.Evaluation;

namespace DeepLabTorch.Reporting;

/// <summary>Pictures of evaluation samples: masks coloured with a palette, and input | truth | prediction strips.</summary>
internal static class Visuals
{
    /// <summary>Class indices (HxW) to RGB with a 256-entry palette (default VOC; 255 is VOC's void colour).</summary>
    public static byte[] Colorize(byte[] indices, byte[]? palette = null)
    {
        palette ??= Palette.Voc;
        var rgb = new byte[indices.Length * 3];
        for (var i = 0; i < indices.Length; i++)
        {
            var p = indices[i] * 3;
            rgb[3 * i] = palette[p];
            rgb[3 * i + 1] = palette[p + 1];
            rgb[3 * i + 2] = palette[p + 2];
        }
        return rgb;
    }

    /// <summary>Images of equal height side by side, with a 4-pixel white gap.</summary>
    public static (byte[] Rgb, int Height, int Width) Strip(int height, int width, params byte[][] images)
    {
        const int gap = 4;
        var total = images.Length * width + (images.Length - 1) * gap;
        var rgb = new byte[height * total * 3];
        Array.Fill(rgb, (byte)255);
        for (var k = 0; k < images.Length; k++)
        {
            var x0 = k * (width + gap);
            for (var y = 0; y < height; y++)
                Array.Copy(images[k], y * width * 3, rgb, (y * total + x0) * 3, width * 3);
        }
        return (rgb, height, total);
    }

    /// <summary>Shrinks an image so that its longer side is at most maxSide (nearest neighbour; masks stay crisp).</summary>
    public static (byte[] Rgb, int Height, int Width) Fit(byte[] rgb, int height, int width, int maxSide)
    {
        var scale = Math.Min(1.0, (double)maxSide / Math.Max(height, width));
        if (scale >= 1) return (rgb, height, width);
        int h = Math.Max(1, (int)(height * scale)), w = Math.Max(1, (int)(width * scale));
        var o = new byte[h * w * 3];
        for (var y = 0; y < h; y++)
        {
            var sy = Math.Min(height - 1, (int)((y + 0.5) / scale));
            for (var x = 0; x < w; x++)
            {
                var sx = Math.Min(width - 1, (int)((x + 0.5) / scale));
                Array.Copy(rgb, (sy * width + sx) * 3, o, (y * w + x) * 3, 3);
            }
        }
        return (o, h, w);
    }

    /// <summary>The three PNGs of a sample for the HTML report, each at most maxSide pixels.</summary>
    public static ReportImage ToReportImage(EvalSample s, int maxSide = 256)
    {
        byte[] Png(byte[] rgb)
        {
            var (r, h, w) = Fit(rgb, s.Height, s.Width, maxSide);
            return ImageCodec.EncodePng(r, h, w);
        }
        return new ReportImage(s.Id, Png(s.Rgb), Png(Colorize(s.Truth)), Png(Colorize(s.Prediction)));
    }

    /// <summary>One PNG strip input | truth | prediction for TensorBoard.</summary>
    public static (byte[] Png, int Height, int Width) ToStripPng(EvalSample s, int maxSide = 256)
    {
        var (a, h, w) = Fit(s.Rgb, s.Height, s.Width, maxSide);
        var (b, _, _) = Fit(Colorize(s.Truth), s.Height, s.Width, maxSide);
        var (c, _, _) = Fit(Colorize(s.Prediction), s.Height, s.Width, maxSide);
        var (strip, sh, sw) = Strip(h, w, a, b, c);
        return (ImageCodec.EncodePng(strip, sh, sw), sh, sw);
    }
}
