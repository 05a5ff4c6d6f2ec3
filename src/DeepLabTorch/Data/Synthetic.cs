namespace DeepLabTorch.Data;

/// <summary>
/// Writes a learnable synthetic data set in real on-disk formats, for tests, demos and benchmarks.
/// kind "voc": VOCdevkit/VOC2012 with JPEGImages/*.jpg, SegmentationClass/*.png (palette, a 255 void
/// band at object borders) and ImageSets/Segmentation/{train,val,trainval}.txt. Objects of five VOC
/// classes (aeroplane, bird, car, cat, person), each with its own shape, colour and texture, at
/// varied scales on cluttered backgrounds. kind "portrait": images/*.jpg + masks/*.png (0/255) with one
/// person-like figure (head, neck, shoulders, torso) per image, and train.txt / val.txt.
/// </summary>
internal static class Synthetic
{
    /// <summary>The VOC classes the synthetic set draws.</summary>
    public static readonly int[] Classes = { 1, 3, 7, 8, 15 };

    public static void Generate(string outDir, int count, int seed, string kind = "voc") => Generate(outDir, count, seed, kind, 500, 375);

    public static void Generate(string outDir, int count, int seed, string kind, int width, int height, double valFraction = 0.2)
    {
        if (count < 2) throw new UserException($"synthetic count must be at least 2 (one train and one val image), got {count}");
        if (width < 32 || height < 32 || width > 4096 || height > 4096) throw new UserException($"synthetic image size {width}x{height} must be 32-4096 per side");
        if (kind is not ("voc" or "portrait")) throw new UserException($"unknown synthetic kind '{kind}' (expected voc or portrait)");
        int nVal = Math.Clamp((int)Math.Round(count * valFraction), 1, count - 1);
        var ids = Enumerable.Range(0, count).Select(i => $"synth_{i:D6}").ToArray();
        // Every 1/valFraction-th image is val, so both splits cover the whole index range.
        var isVal = new bool[count];
        for (int k = 0; k < nVal; k++) isVal[(int)((long)k * count / nVal)] = true;
        string imageDir, maskDir, listDir;
        if (kind == "voc")
        {
            var voc = Path.Combine(outDir, "VOCdevkit", "VOC2012");
            imageDir = Path.Combine(voc, "JPEGImages");
            maskDir = Path.Combine(voc, "SegmentationClass");
            listDir = Path.Combine(voc, "ImageSets", "Segmentation");
        }
        else
        {
            imageDir = Path.Combine(outDir, "images");
            maskDir = Path.Combine(outDir, "masks");
            listDir = outDir;
        }
        Directory.CreateDirectory(imageDir);
        Directory.CreateDirectory(maskDir);
        Directory.CreateDirectory(listDir);
        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
        {
            var rng = new SampleRandom(seed, 0x5EED, i);
            var rgb = new byte[width * height * 3];
            var label = new byte[width * height];
            Background(width, height, ref rng, rgb);
            if (kind == "voc")
            {
                int n = rng.NextInt(1, 3);
                for (int k = 0; k < n; k++) DrawObject(width, height, ref rng, rgb, label, Classes[rng.NextInt(0, Classes.Length - 1)]);
                Noise(rgb, ref rng);
                VoidBand(label, width, height, 2);
                ImageCodec.WriteJpeg(Path.Combine(imageDir, ids[i] + ".jpg"), rgb, height, width, 90);
                ImageCodec.WritePalettePng(Path.Combine(maskDir, ids[i] + ".png"), label, height, width);
            }
            else
            {
                DrawPortrait(width, height, ref rng, rgb, label);
                Noise(rgb, ref rng);
                for (int p = 0; p < label.Length; p++) label[p] = label[p] != 0 ? (byte)255 : (byte)0;
                ImageCodec.WriteJpeg(Path.Combine(imageDir, ids[i] + ".jpg"), rgb, height, width, 90);
                ImageCodec.WriteGrayPng(Path.Combine(maskDir, ids[i] + ".png"), label, height, width);
            }
        });
        var train = ids.Where((_, i) => !isVal[i]).ToArray();
        var val = ids.Where((_, i) => isVal[i]).ToArray();
        File.WriteAllLines(Path.Combine(listDir, "train.txt"), train);
        File.WriteAllLines(Path.Combine(listDir, "val.txt"), val);
        if (kind == "voc") File.WriteAllLines(Path.Combine(listDir, "trainval.txt"), ids);
    }

    // ------------------------------------------------------------------ background
    private static (int R, int G, int B) Muted(ref SampleRandom rng)
    {
        int gray = rng.NextInt(50, 200);
        // Half-way to gray: backgrounds are less saturated than the objects.
        return ((gray + rng.NextInt(30, 220)) / 2, (gray + rng.NextInt(30, 220)) / 2, (gray + rng.NextInt(30, 220)) / 2);
    }

    private static void Background(int w, int h, ref SampleRandom rng, byte[] rgb)
    {
        var c0 = Muted(ref rng);
        var c1 = Muted(ref rng);
        for (int y = 0; y < h; y++)
        {
            float t = (float)y / h;
            byte r = (byte)(c0.R + (c1.R - c0.R) * t), g = (byte)(c0.G + (c1.G - c0.G) * t), b = (byte)(c0.B + (c1.B - c0.B) * t);
            int row = y * w * 3;
            for (int x = 0; x < w; x++) { rgb[row + 3 * x] = r; rgb[row + 3 * x + 1] = g; rgb[row + 3 * x + 2] = b; }
        }
        int clutter = rng.NextInt(6, 16);
        for (int k = 0; k < clutter; k++)
        {
            var c = Muted(ref rng);
            var c2 = Muted(ref rng);
            int kind = rng.NextInt(0, 2);
            int bw = rng.NextInt(w / 20 + 1, w / 3), bh = rng.NextInt(h / 20 + 1, h / 3);
            if (kind == 2) { if (rng.NextDouble() < 0.5) bh = Math.Max(2, h / 60); else bw = Math.Max(2, w / 60); } // thin bars
            int x0 = rng.NextInt(-bw / 2, w - bw / 2), y0 = rng.NextInt(-bh / 2, h - bh / 2);
            int period = rng.NextInt(4, 24);
            bool checker = rng.NextDouble() < 0.4;
            for (int y = Math.Max(0, y0); y < Math.Min(h, y0 + bh); y++)
                for (int x = Math.Max(0, x0); x < Math.Min(w, x0 + bw); x++)
                {
                    if (kind == 1)
                    {
                        float u = (x - x0 + 0.5f) / bw * 2 - 1, v = (y - y0 + 0.5f) / bh * 2 - 1;
                        if (u * u + v * v > 1) continue;
                    }
                    var col = checker && (((x / period) + (y / period)) & 1) == 1 ? c2 : c;
                    Put(rgb, w, x, y, col);
                }
        }
    }

    private static void Put(byte[] rgb, int w, int x, int y, (int R, int G, int B) c)
    {
        int i = (y * w + x) * 3;
        rgb[i] = (byte)Math.Clamp(c.R, 0, 255);
        rgb[i + 1] = (byte)Math.Clamp(c.G, 0, 255);
        rgb[i + 2] = (byte)Math.Clamp(c.B, 0, 255);
    }

    private static void Noise(byte[] rgb, ref SampleRandom rng)
    {
        ulong s = rng.NextULong() | 1;
        for (int i = 0; i < rgb.Length; i++)
        {
            // xorshift: cheap per-pixel noise of +-8 levels.
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            rgb[i] = (byte)Math.Clamp(rgb[i] + (int)(s % 17) - 8, 0, 255);
        }
    }

    // ------------------------------------------------------------------ objects
    private static (int R, int G, int B) Jitter((int R, int G, int B) c, ref SampleRandom rng, int amount) =>
        (c.R + rng.NextInt(-amount, amount), c.G + rng.NextInt(-amount, amount), c.B + rng.NextInt(-amount, amount));

    private static void DrawObject(int w, int h, ref SampleRandom rng, byte[] rgb, byte[] label, int cls)
    {
        double aspect = cls switch { 1 => 1.5, 3 => 0.9, 7 => 1.7, 8 => 1.3, _ => 0.45 };
        double scale = 0.18 + 0.5 * rng.NextDouble();
        int oh = Math.Max(8, (int)(h * scale)), ow = Math.Max(8, (int)(oh * aspect));
        if (ow > w) { ow = w; oh = Math.Max(8, (int)(ow / aspect)); }
        int x0 = rng.NextInt(-ow / 4, w - 3 * ow / 4), y0 = rng.NextInt(-oh / 4, h - 3 * oh / 4);
        bool mirror = rng.NextDouble() < 0.5;
        var main = Jitter(cls switch
        {
            1 => (175, 185, 210),
            3 => (235, 205, 40),
            7 => (205, 30, 35),
            8 => (235, 135, 40),
            _ => (rng.NextInt(0, 1) == 0 ? 40 : 30, 160, 70),
        }, ref rng, 18);
        var second = Jitter(cls switch
        {
            1 => (60, 70, 110),
            3 => (70, 40, 20),
            7 => (245, 245, 245),
            8 => (90, 45, 15),
            _ => (235, 195, 165),
        }, ref rng, 12);
        int period = Math.Max(3, oh / 10);
        for (int y = Math.Max(0, y0); y < Math.Min(h, y0 + oh); y++)
            for (int x = Math.Max(0, x0); x < Math.Min(w, x0 + ow); x++)
            {
                double u = (x - x0 + 0.5) / ow, v = (y - y0 + 0.5) / oh;
                if (mirror) u = 1 - u;
                int part = Shape(cls, u, v, aspect);
                if (part == 0) continue;
                (int, int, int) c = Texture(cls, part, x, y, period, main, second);
                Put(rgb, w, x, y, c);
                label[y * w + x] = (byte)cls;
            }
    }

    /// <summary>0 outside; otherwise a part number used for colouring. u, v in [0,1] over the box.</summary>
    private static int Shape(int cls, double u, double v, double aspect)
    {
        switch (cls)
        {
            case 1: // aeroplane: fuselage, swept wings, tail fin
            {
                double fx = (u - 0.5) / 0.5, fy = (v - 0.5) / 0.11;
                if (fx * fx + fy * fy <= 1) return 1;
                double dv = Math.Abs(v - 0.5);
                if (dv <= 0.45 && Math.Abs(u - 0.45 - dv * 0.3) <= 0.07) return 2;
                if (u < 0.14 && v >= 0.2 && v <= 0.5) return 2;
                return 0;
            }
            case 3: // bird: an upward triangle with a round head
            {
                if (v >= 0.25 && v <= 0.95 && Math.Abs(u - 0.5) <= 0.48 * (v - 0.25) / 0.7) return 1;
                double hx = (u - 0.5) * aspect, hy = v - 0.17;
                return hx * hx + hy * hy <= 0.13 * 0.13 ? 2 : 0;
            }
            case 7: // car: body, cabin, two wheels
            {
                double r = 0.17;
                foreach (var cx in new[] { 0.22, 0.78 })
                {
                    double dx = (u - cx) * aspect, dy = v - 0.78;
                    if (dx * dx + dy * dy <= r * r) return 2;
                }
                if (v >= 0.35 && v <= 0.8) return 1;
                if (v >= 0.08 && v < 0.35 && u >= 0.25 + (0.35 - v) * 0.4 && u <= 0.72) return 1;
                return 0;
            }
            case 8: // cat: body ellipse, head circle, two ears
            {
                double bx = (u - 0.45) / 0.42, by = (v - 0.65) / 0.32;
                if (bx * bx + by * by <= 1) return 1;
                double hx = (u - 0.78) * aspect, hy = v - 0.35;
                if (hx * hx + hy * hy <= 0.22 * 0.22) return 1;
                foreach (var ex in new[] { 0.68, 0.88 })
                    if (v >= 0.02 && v <= 0.2 && Math.Abs(u - ex) * aspect <= 0.08 * (v - 0.02) / 0.18) return 1;
                return 0;
            }
            default: // person: head, torso, arms, legs
            {
                double hx = (u - 0.5) * aspect, hy = v - 0.1;
                if (hx * hx + hy * hy <= 0.085 * 0.085) return 2;
                if (v >= 0.18 && v <= 0.2 && Math.Abs(u - 0.5) <= 0.1) return 2; // neck
                if (v >= 0.2 && v <= 0.58 && Math.Abs(u - 0.5) <= 0.32) return 1;
                if (v >= 0.22 && v <= 0.55 && Math.Abs(u - 0.5) <= 0.45) return 2; // arms
                if (v > 0.58 && v <= 1.0 && Math.Abs(u - 0.5) <= 0.3 && Math.Abs(u - 0.5) >= 0.04) return 3;
                return 0;
            }
        }
    }

    private static (int, int, int) Texture(int cls, int part, int x, int y, int period, (int R, int G, int B) main, (int R, int G, int B) second)
    {
        switch (cls)
        {
            case 1: return part == 2 ? (main.R - 30, main.G - 30, main.B - 20) : ((y / period) % 4 == 0 ? second : main); // panel lines
            case 3: return part == 2 ? second : (((x / period) + (y / period)) % 2 == 0 && (x % period) < period / 2 ? second : main); // spots
            case 7: return part == 2 ? (20, 20, 20) : ((y / period) % 3 == 1 ? second : main); // stripe
            case 8: return ((x + y) / period) % 3 == 0 ? second : main; // diagonal tiger stripes
            default: return part == 2 ? second : part == 3 ? (35, 40, 90) : ((x / period) % 2 == 0 ? main : (main.R / 2, main.G / 2, main.B / 2)); // shirt stripes
        }
    }

    /// <summary>Marks pixels within radius of a label change as void (255), as VOC's annotations do.</summary>
    internal static void VoidBand(byte[] label, int w, int h, int radius)
    {
        var edge = new bool[w * h];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int i = y * w + x;
                if (x + 1 < w && label[i] != label[i + 1]) { edge[i] = true; edge[i + 1] = true; }
                if (y + 1 < h && label[i] != label[i + w]) { edge[i] = true; edge[i + w] = true; }
            }
        var rows = new bool[w * h];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                if (!edge[y * w + x]) continue;
                for (int dx = Math.Max(0, x - radius + 1); dx <= Math.Min(w - 1, x + radius - 1); dx++) rows[y * w + dx] = true;
            }
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                if (!rows[y * w + x]) continue;
                for (int dy = Math.Max(0, y - radius + 1); dy <= Math.Min(h - 1, y + radius - 1); dy++) label[dy * w + x] = 255;
            }
    }

    // ------------------------------------------------------------------ portraits
    private static void DrawPortrait(int w, int h, ref SampleRandom rng, byte[] rgb, byte[] label)
    {
        double s = 0.7 + 0.6 * rng.NextDouble();          // figure scale
        double cx = w * (0.35 + 0.3 * rng.NextDouble());
        double headR = h * 0.11 * s;
        double headY = h * (0.25 + 0.15 * rng.NextDouble());
        double shoulderY = headY + headR * 1.9;
        double shoulderHalf = headR * (2.2 + 0.6 * rng.NextDouble());
        var skin = Jitter((225, 180, 150), ref rng, 25);
        var hair = Jitter((50, 35, 25), ref rng, 15);
        var shirt = (rng.NextInt(20, 230), rng.NextInt(20, 230), rng.NextInt(20, 230));
        bool striped = rng.NextDouble() < 0.5;
        int period = Math.Max(3, (int)(headR / 3));
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                double dx = x + 0.5 - cx, dy = y + 0.5 - headY;
                int part = 0;
                if (dx * dx / (0.85 * 0.85) + dy * dy <= headR * headR) part = dy < -headR * 0.35 ? 2 : 1;
                else if (y >= headY + headR * 0.8 && y < shoulderY && Math.Abs(dx) <= headR * 0.45) part = 1; // neck
                else if (y >= shoulderY)
                {
                    // Rounded shoulders widening into the torso down to the bottom edge.
                    double t = Math.Min(1.0, (y - shoulderY) / (headR * 1.2));
                    double half = shoulderHalf * (0.6 + 0.4 * Math.Sqrt(t)) + (y - shoulderY) * 0.15;
                    if (Math.Abs(dx) <= half) part = 3;
                }
                if (part == 0) continue;
                label[y * w + x] = 1;
                var c = part == 1 ? skin : part == 2 ? hair : striped && (y / period) % 2 == 0 ? (shirt.Item1 / 2, shirt.Item2 / 2, shirt.Item3 / 2) : shirt;
                Put(rgb, w, x, y, c);
            }
    }
}
