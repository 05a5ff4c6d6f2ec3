namespace DeepLabTorch.Data;

/// <summary>
/// One sample's geometry: resize the whole image to ScaledHeight x ScaledWidth, mirror if Flip,
/// pad bottom/right, take the OutHeight x OutWidth window at (CropY, CropX), blur with BlurSigma;
/// and its colour jitter factors (1 = unchanged, see <see cref="ColorJitter"/>).
/// </summary>
internal readonly record struct AugmentParams(int ScaledHeight, int ScaledWidth, int CropY, int CropX,
    int OutHeight, int OutWidth, bool Flip, float BlurSigma, double Brightness = 1, double Contrast = 1, double Saturation = 1)
{
    public bool Jitters => Brightness != 1 || Contrast != 1 || Saturation != 1;
}

/// <summary>The reference recipe's train and validation transforms, drawn deterministically.</summary>
internal static class Transforms
{
    /// <summary>
    /// Train: flip with p=0.5; short side to a random integer in [MinScale, MaxScale] x base size,
    /// the long side in proportion; pad to the crop size; random crop; optional blur (p=0.5, sigma ~ U[0,1)).
    /// </summary>
    public static AugmentParams Train(int height, int width, DataOptions o, long epoch, long index)
    {
        var rng = new SampleRandom(o.Seed, epoch, index);
        bool flip = rng.NextDouble() < 0.5;
        int shortSide = rng.NextInt((int)(o.BaseSize * o.MinScale), (int)(o.BaseSize * o.MaxScale));
        shortSide = Math.Max(shortSide, 1);
        int oh, ow;
        if (height > width) { ow = shortSide; oh = Math.Max(1, (int)(1.0 * height * ow / width)); }
        else { oh = shortSide; ow = Math.Max(1, (int)(1.0 * width * oh / height)); }
        int crop = o.CropSize;
        int padH = Math.Max(oh, crop), padW = Math.Max(ow, crop);
        int x = rng.NextInt(0, padW - crop);
        int y = rng.NextInt(0, padH - crop);
        float sigma = 0f;
        if (o.GaussianBlur && rng.NextDouble() < 0.5) sigma = (float)rng.NextDouble();
        // Drawn last, and only when on, so the other draws stay those of a run without it.
        var (b, c, s) = o.ColorJitter > 0 ? ColorJitter.Draw(o.ColorJitter, ref rng) : (1.0, 1.0, 1.0);
        return new AugmentParams(oh, ow, y, x, crop, crop, flip, sigma, b, c, s);
    }

    /// <summary>Validation: the full image (official protocol), or with ValCrop the reference's
    /// fixed-scale center crop (short side to the crop size, then a center crop).</summary>
    public static AugmentParams Val(int height, int width, DataOptions o)
    {
        if (!o.ValCrop) return new AugmentParams(height, width, 0, 0, height, width, false, 0f);
        int crop = o.CropSize;
        int oh, ow;
        if (width > height) { oh = crop; ow = Math.Max(1, (int)(1.0 * width * oh / height)); }
        else { ow = crop; oh = Math.Max(1, (int)(1.0 * height * ow / width)); }
        int x = (int)Math.Round((ow - crop) / 2.0), y = (int)Math.Round((oh - crop) / 2.0);
        return new AugmentParams(oh, ow, Math.Max(0, y), Math.Max(0, x), crop, crop, false, 0f);
    }

    /// <summary>
    /// Applies p to an RGB image and its mask, writing the normalized CHW image and int64 mask into
    /// the caller's spans (a slot of the batch buffer). Masks are resized nearest-neighbour only;
    /// padding is 255 in the mask and padRgb (black, or the mean) in the image. A mirrored mask swaps
    /// the labels of mirrorPairs (left and right eyes, brows, ears of a face).
    /// </summary>
    public static void Apply(SegmentationSample s, in AugmentParams p, Span<float> image, Span<long> mask, bool padWithMean = false,
        IReadOnlyList<(byte Left, byte Right)>? mirrorPairs = null)
    {
        long n = (long)p.OutHeight * p.OutWidth;
        if (image.Length < 3 * n || (!mask.IsEmpty && mask.Length < n)) throw new ArgumentException("output spans too small for the crop");
        if (s.Image.Length != s.Height * s.Width * 3 || s.Mask.Length != s.Height * s.Width)
            throw new ArgumentException($"sample {s.Id}: buffers do not match its size {s.Height}x{s.Width}");
        Span<byte> pad = stackalloc byte[3];
        for (int c = 0; c < 3; c++) pad[c] = padWithMean ? (byte)Math.Round(ImageTensor.Mean[c] * 255) : (byte)0;
        try
        {
            var rgb = s.Image;
            if (p.Jitters)
            {
                rgb = (byte[])s.Image.Clone();
                ColorJitter.Apply(rgb, p.Brightness, p.Contrast, p.Saturation);
            }
            AugmentKernel.ForThisThread().Run(rgb, s.Mask, s.Height, s.Width, p, Normalization.Value.Scale, Normalization.Value.Offset,
                pad, 255, image, mask);
            if (p.Flip && mirrorPairs is { Count: > 0 } && !mask.IsEmpty) SwapMirrored(mask[..(int)n], mirrorPairs);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"sample {s.Id}: {e.Message}", e);
        }
    }

    /// <summary>Left labels become right ones and right ones left, in a mirrored mask.</summary>
    internal static void SwapMirrored(Span<long> mask, IReadOnlyList<(byte Left, byte Right)> pairs)
    {
        Span<long> map = stackalloc long[256];
        for (int v = 0; v < 256; v++) map[v] = v;
        foreach (var (l, r) in pairs)
        {
            map[l] = r;
            map[r] = l;
        }
        for (int i = 0; i < mask.Length; i++)
            if ((ulong)mask[i] < 256) mask[i] = map[(int)mask[i]];
    }

    /// <summary>ImageNet mean/std as v * Scale + Offset on bytes.</summary>
    internal static readonly Lazy<(float[] Scale, float[] Offset)> Normalization = new(() => ImageKernels.NormalizationOf(ImageTensor.Mean, ImageTensor.Std));
}
