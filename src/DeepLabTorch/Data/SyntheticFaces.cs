using System.Globalization;

namespace DeepLabTorch.Data;

/// <summary>
/// A small CelebAMask-HQ-layout tree for tests and demos, in the download's own formats: face images
/// (JPEG, twice the mask size, as 1024² images go with 512² masks) in CelebA-HQ-img/, and one RGB
/// black-and-white PNG per part present in CelebAMask-HQ-mask-anno/&lt;id / 2000&gt;/&lt;id:D5&gt;_&lt;part&gt;.png.
/// Each face is an oval of skin with brows, eyes, nose, lips and ears, hair around it, a neck and
/// cloth, sometimes glasses or a hat. Part masks overlap as the real ones do (skin runs under the eyes),
/// and the image is painted from the merged map, so the labels are learnable. Left parts sit on the
/// image's left, so a flip that swaps the left and right labels keeps images and labels consistent. train.txt and
/// val.txt split the faces (every fifth validates).
/// </summary>
internal static class SyntheticFaces
{
    /// <summary>One colour per merged label (index = label), jittered per face.</summary>
    private static readonly (int R, int G, int B)[] Colours =
    {
        (0, 0, 0), (224, 172, 140), (70, 45, 30), (70, 45, 30), (250, 250, 250), (250, 250, 250), (30, 30, 40), (210, 150, 120),
        (210, 150, 120), (230, 200, 40), (200, 130, 110), (120, 20, 30), (190, 60, 70), (170, 40, 50), (205, 155, 125), (230, 230, 90),
        (40, 80, 170), (60, 35, 20), (150, 20, 140),
    };

    /// <param name="maskSize">The masks' side (images are twice that).</param>
    public static void Generate(string outDir, int count, int seed, int maskSize = 64)
    {
        if (count < 1) throw new UserException($"synthetic face count must be at least 1, got {count}");
        if (maskSize < 32 || maskSize > 1024) throw new UserException($"synthetic mask size {maskSize} must be 32-1024");
        var images = Path.Combine(outDir, CelebAMaskHq.ImageFolder);
        Directory.CreateDirectory(images);
        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, id =>
        {
            var rng = new SampleRandom(seed, 0xFACE, id);
            var parts = DrawParts(maskSize, ref rng);
            var merged = new byte[maskSize * maskSize];
            for (int k = 0; k < CelebAMaskHq.Parts.Length; k++)
            {
                if (parts[k] is not { } m) continue;
                for (int i = 0; i < merged.Length; i++) if (m[i]) merged[i] = (byte)(k + 1);
                var rgb = new byte[maskSize * maskSize * 3];
                for (int i = 0; i < m.Length; i++) if (m[i]) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = 255;
                var path = CelebAMaskHq.PartPath(outDir, id, CelebAMaskHq.Parts[k]);
                ImageCodec.WritePng(path, rgb, maskSize, maskSize);
            }
            var image = Paint(merged, maskSize, ref rng);
            var big = ImageCodec.ResizeBilinear(image, maskSize, maskSize, 3, 2 * maskSize, 2 * maskSize);
            ImageCodec.WriteJpeg(Path.Combine(images, id.ToString(CultureInfo.InvariantCulture) + ".jpg"), big, 2 * maskSize, 2 * maskSize, 92);
        });
        // Split files (CelebAMaskHq reads root/<split>.txt when the official ones are absent): every fifth face validates.
        if (count >= 2)
        {
            var ids = Enumerable.Range(0, count).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray();
            File.WriteAllLines(Path.Combine(outDir, "train.txt"), ids.Where((_, i) => i % 5 != 4 || count < 5));
            File.WriteAllLines(Path.Combine(outDir, "val.txt"), ids.Where((_, i) => i % 5 == 4 || count < 5));
        }
    }

    /// <summary>The part masks of one face (null: the face does not show that part), in CelebAMaskHq.Parts order.</summary>
    private static bool[]?[] DrawParts(int s, ref SampleRandom rng)
    {
        var parts = new bool[]?[CelebAMaskHq.Parts.Length];
        bool[] New(string part) => parts[Array.IndexOf(CelebAMaskHq.Parts, part)] = new bool[s * s];
        double R(double lo, double hi, ref SampleRandom r) => lo + (hi - lo) * r.NextDouble();

        double cx = s * R(0.42, 0.58, ref rng), cy = s * R(0.42, 0.52, ref rng);
        double fw = s * R(0.20, 0.26, ref rng), fh = s * R(0.27, 0.33, ref rng);
        Ellipse(New("skin"), s, cx, cy, fw, fh);
        // Hair: a larger oval behind the head, its lower edge at the eyes; the face is cut out of it.
        var hair = New("hair");
        double hairBottom = cy - fh * R(0.0, 0.3, ref rng);
        Ellipse(hair, s, cx, cy - fh * 0.15, fw * 1.3, fh * 1.2, yMax: hairBottom);
        Cut(hair, parts[0]!);
        var neck = New("neck");
        Rect(neck, s, cx - fw * 0.45, cy + fh * 0.7, cx + fw * 0.45, cy + fh * 1.5);
        var cloth = New("cloth");
        Ellipse(cloth, s, cx, cy + fh * 2.2, fw * 2.2, fh * 0.9);
        double eyeY = cy - fh * 0.12, eyeDx = fw * 0.42, eyeW = fw * 0.2, eyeH = fh * 0.07;
        Ellipse(New("l_brow"), s, cx - eyeDx, eyeY - fh * 0.18, eyeW * 1.2, eyeH * 0.6);
        Ellipse(New("r_brow"), s, cx + eyeDx, eyeY - fh * 0.18, eyeW * 1.2, eyeH * 0.6);
        Ellipse(New("l_eye"), s, cx - eyeDx, eyeY, eyeW, eyeH);
        Ellipse(New("r_eye"), s, cx + eyeDx, eyeY, eyeW, eyeH);
        if (rng.NextDouble() < 0.3)
        {
            // Glasses: two rings around the eyes and a bridge, over them in merge order.
            var g = New("eye_g");
            Ring(g, s, cx - eyeDx, eyeY, eyeW * 1.5, eyeH * 3);
            Ring(g, s, cx + eyeDx, eyeY, eyeW * 1.5, eyeH * 3);
            Rect(g, s, cx - eyeDx + eyeW * 1.4, eyeY - 1, cx + eyeDx - eyeW * 1.4, eyeY + 1);
        }
        if (rng.NextDouble() < 0.8)
        {
            Ellipse(New("l_ear"), s, cx - fw * 1.02, cy, fw * 0.12, fh * 0.18);
            Ellipse(New("r_ear"), s, cx + fw * 1.02, cy, fw * 0.12, fh * 0.18);
            if (rng.NextDouble() < 0.3) Ellipse(New("ear_r"), s, cx - fw * 1.02, cy + fh * 0.2, fw * 0.06, fh * 0.05);
        }
        Ellipse(New("nose"), s, cx, cy + fh * 0.15, fw * 0.13, fh * 0.16);
        double mouthY = cy + fh * 0.5;
        if (rng.NextDouble() < 0.4) Ellipse(New("mouth"), s, cx, mouthY, fw * 0.3, fh * 0.04);
        Ellipse(New("u_lip"), s, cx, mouthY - fh * 0.05, fw * 0.32, fh * 0.05);
        Ellipse(New("l_lip"), s, cx, mouthY + fh * 0.06, fw * 0.3, fh * 0.06);
        if (rng.NextDouble() < 0.15) Ellipse(New("neck_l"), s, cx, cy + fh * 1.2, fw * 0.5, fh * 0.05);
        if (rng.NextDouble() < 0.2) Ellipse(New("hat"), s, cx, cy - fh * 1.0, fw * 1.5, fh * 0.45);
        return parts;
    }

    private static byte[] Paint(byte[] merged, int s, ref SampleRandom rng)
    {
        var rgb = new byte[s * s * 3];
        var palette = Colours.Select(c => c).ToArray();
        for (int l = 0; l < palette.Length; l++)
        {
            var c = palette[l];
            int j = l == 0 ? 60 : 20;
            palette[l] = (c.R + rng.NextInt(-j, j), c.G + rng.NextInt(-j, j), c.B + rng.NextInt(-j, j));
        }
        // Background: a vertical gradient from the background colour.
        var bg2 = (palette[0].R + rng.NextInt(40, 150), palette[0].G + rng.NextInt(40, 150), palette[0].B + rng.NextInt(40, 150));
        ulong noise = rng.NextULong() | 1;
        for (int y = 0; y < s; y++)
            for (int x = 0; x < s; x++)
            {
                int i = y * s + x;
                var c = merged[i] == 0
                    ? (palette[0].R + (bg2.Item1 - palette[0].R) * y / s, palette[0].G + (bg2.Item2 - palette[0].G) * y / s, palette[0].B + (bg2.Item3 - palette[0].B) * y / s)
                    : palette[merged[i]];
                noise ^= noise << 13; noise ^= noise >> 7; noise ^= noise << 17;
                int n = (int)(noise % 13) - 6;
                rgb[3 * i] = (byte)Math.Clamp(c.Item1 + n, 0, 255);
                rgb[3 * i + 1] = (byte)Math.Clamp(c.Item2 + n, 0, 255);
                rgb[3 * i + 2] = (byte)Math.Clamp(c.Item3 + n, 0, 255);
            }
        return rgb;
    }

    private static void Ellipse(bool[] m, int s, double cx, double cy, double rx, double ry, double yMax = double.MaxValue)
    {
        for (int y = Math.Max(0, (int)(cy - ry)); y <= Math.Min(s - 1, (int)(cy + ry) + 1); y++)
        {
            if (y + 0.5 > yMax) break;
            for (int x = Math.Max(0, (int)(cx - rx)); x <= Math.Min(s - 1, (int)(cx + rx) + 1); x++)
            {
                double u = (x + 0.5 - cx) / rx, v = (y + 0.5 - cy) / ry;
                if (u * u + v * v <= 1) m[y * s + x] = true;
            }
        }
    }

    private static void Ring(bool[] m, int s, double cx, double cy, double rx, double ry)
    {
        var outer = new bool[s * s];
        var inner = new bool[s * s];
        Ellipse(outer, s, cx, cy, rx, ry);
        Ellipse(inner, s, cx, cy, Math.Max(0.5, rx - 1.5), Math.Max(0.5, ry - 1.5));
        for (int i = 0; i < m.Length; i++) if (outer[i] && !inner[i]) m[i] = true;
    }

    private static void Rect(bool[] m, int s, double x0, double y0, double x1, double y1)
    {
        for (int y = Math.Max(0, (int)y0); y < Math.Min(s, (int)Math.Ceiling(y1)); y++)
            for (int x = Math.Max(0, (int)x0); x < Math.Min(s, (int)Math.Ceiling(x1)); x++)
                m[y * s + x] = true;
    }

    private static void Cut(bool[] m, bool[] hole)
    {
        for (int i = 0; i < m.Length; i++) if (hole[i]) m[i] = false;
    }
}
