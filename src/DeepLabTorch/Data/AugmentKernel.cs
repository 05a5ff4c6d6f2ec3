using System.Runtime.Intrinsics;

namespace DeepLabTorch.Data;

/// <summary>
/// The whole per-sample training augmentation in one pass, writing into the batch buffers: the image (h x w RGB)
/// and mask are conceptually resized to ScaledHeight x ScaledWidth (bilinear / nearest), mirrored when Flip,
/// padded at the bottom and right, and cropped at (CropY, CropX) to OutHeight x OutWidth; only the crop's pixels
/// are computed. Then an optional Gaussian blur of the image crop and the normalisation v*a + b into planar CHW.
/// </summary>
/// <remarks>
/// Separable: each source row the crop needs is interpolated horizontally once (exact integers, planar), and two
/// such rows are combined vertically per output row. Rows are visited in increasing order, so two cached rows
/// suffice. Scratch buffers are per thread (the loader's workers call this concurrently).
/// </remarks>
internal sealed class AugmentKernel
{
    [ThreadStatic] private static AugmentKernel? _perThread;

    private int[] _colA = [], _colB = [], _colW1 = [], _maskCols = [];
    private int[] _rowA = [], _rowB = [], _combined = [];
    private byte[] _crop = [];
    private readonly BlurKernel _blur = new();

    public static AugmentKernel ForThisThread() => _perThread ??= new AugmentKernel();

    /// <param name="padRgb">Image padding (3 bytes).</param>
    /// <param name="scale">Normalisation factors a per channel.</param>
    /// <param name="offset">Normalisation offsets b per channel.</param>
    public void Run(ReadOnlySpan<byte> image, ReadOnlySpan<byte> mask, int h, int w, in AugmentParams p,
        ReadOnlySpan<float> scale, ReadOnlySpan<float> offset, ReadOnlySpan<byte> padRgb, int padMask, Span<float> outImage, Span<long> outMask)
    {
        if (h <= 0 || w <= 0 || p.ScaledHeight <= 0 || p.ScaledWidth <= 0 || p.OutHeight <= 0 || p.OutWidth <= 0)
            throw new ArgumentException("augment: sizes must be positive");
        if (p.CropY < 0 || p.CropX < 0) throw new ArgumentException("augment: crop offsets must be non-negative");
        // Padding is always a suffix: the rows and columns past the scaled image.
        int validH = Math.Clamp(p.ScaledHeight - p.CropY, 0, p.OutHeight);
        int validW = Math.Clamp(p.ScaledWidth - p.CropX, 0, p.OutWidth);
        PrepareColumns(p, w, validW);
        if (p.BlurSigma > 0f)
        {
            ResampleToCrop(image, h, w, p, validH, validW, padRgb);
            _blur.Run(_crop, p.OutHeight, p.OutWidth, p.BlurSigma, scale, offset, outImage);
        }
        else ResampleNormalized(image, h, w, p, validH, validW, padRgb, scale, offset, outImage);
        if (!outMask.IsEmpty) MaskCrop(mask, h, w, p, validH, validW, padMask, outMask);
    }

    private void PrepareColumns(in AugmentParams p, int w, int validW)
    {
        Grow(ref _colA, validW);
        Grow(ref _colB, validW);
        Grow(ref _colW1, validW);
        Grow(ref _maskCols, validW);
        for (int ox = 0; ox < validW; ox++)
        {
            int sx = p.CropX + ox;
            if (p.Flip) sx = p.ScaledWidth - 1 - sx;
            var t = ImageKernels.BilinearTap(sx, w, p.ScaledWidth);
            _colA[ox] = 3 * t.I0;
            _colB[ox] = 3 * t.I1;
            _colW1[ox] = t.W1;
            _maskCols[ox] = ImageKernels.NearestIndex(sx, w, p.ScaledWidth);
        }
    }

    // Horizontal pass of one source row into planar ints (channel c at [c*validW, (c+1)*validW)).
    private void Horizontal(ReadOnlySpan<byte> row, int validW, Span<int> output)
    {
        var colA = _colA.AsSpan(0, validW);
        var colB = _colB.AsSpan(0, validW);
        var colW1 = _colW1.AsSpan(0, validW);
        var r = output[..validW];
        var g = output.Slice(validW, validW);
        var b = output.Slice(2 * validW, validW);
        for (int ox = 0; ox < validW; ox++)
        {
            int a = colA[ox], c = colB[ox], w1 = colW1[ox], w0 = ImageKernels.One - w1;
            r[ox] = row[a] * w0 + row[c] * w1;
            g[ox] = row[a + 1] * w0 + row[c + 1] * w1;
            b[ox] = row[a + 2] * w0 + row[c + 2] * w1;
        }
    }

    // Makes _rowA hold source row i0 and _rowB row i1 (horizontally interpolated), reusing what is cached.
    private void LoadRows(ReadOnlySpan<byte> image, int w, int validW, ImageKernels.Tap t, ref int keyA, ref int keyB)
    {
        if (keyA != t.I0)
        {
            if (keyB == t.I0)
            {
                (_rowA, _rowB) = (_rowB, _rowA);
                (keyA, keyB) = (keyB, -1);
            }
            else
            {
                Horizontal(image.Slice(t.I0 * w * 3, w * 3), validW, _rowA);
                keyA = t.I0;
            }
        }
        if (keyB != t.I1)
        {
            Horizontal(image.Slice(t.I1 * w * 3, w * 3), validW, _rowB);
            keyB = t.I1;
        }
    }

    // The fast path (no blur): resample, normalise and write the planes directly.
    private void ResampleNormalized(ReadOnlySpan<byte> image, int h, int w, in AugmentParams p, int validH, int validW,
        ReadOnlySpan<byte> padRgb, ReadOnlySpan<float> scale, ReadOnlySpan<float> offset, Span<float> outImage)
    {
        int plane = p.OutHeight * p.OutWidth;
        Grow(ref _rowA, 3 * validW);
        Grow(ref _rowB, 3 * validW);
        Grow(ref _combined, 3 * validW);
        int keyA = -1, keyB = -1;
        for (int oy = 0; oy < p.OutHeight; oy++)
        {
            if (oy < validH)
            {
                var t = ImageKernels.BilinearTap(p.CropY + oy, h, p.ScaledHeight);
                LoadRows(image, w, validW, t, ref keyA, ref keyB);
                ImageKernels.CombineRows(_rowA.AsSpan(0, 3 * validW), _rowB.AsSpan(0, 3 * validW), t.W1, _combined.AsSpan(0, 3 * validW));
            }
            for (int c = 0; c < 3; c++)
            {
                var dst = outImage.Slice(c * plane + oy * p.OutWidth, p.OutWidth);
                int valid = oy < validH ? validW : 0;
                ImageKernels.ScaleToFloat(_combined.AsSpan(c * validW, valid), scale[c], offset[c], dst[..valid]);
                dst[valid..].Fill(padRgb[c] * scale[c] + offset[c]);
            }
        }
    }

    // The blur path: the crop as planar bytes first (the blur needs its neighbours), padding included.
    private void ResampleToCrop(ReadOnlySpan<byte> image, int h, int w, in AugmentParams p, int validH, int validW, ReadOnlySpan<byte> padRgb)
    {
        int plane = p.OutHeight * p.OutWidth;
        Grow(ref _crop, 3 * plane);
        Grow(ref _rowA, 3 * validW);
        Grow(ref _rowB, 3 * validW);
        Grow(ref _combined, 3 * validW);
        int keyA = -1, keyB = -1;
        for (int oy = 0; oy < p.OutHeight; oy++)
        {
            int valid = 0;
            if (oy < validH)
            {
                var t = ImageKernels.BilinearTap(p.CropY + oy, h, p.ScaledHeight);
                LoadRows(image, w, validW, t, ref keyA, ref keyB);
                ImageKernels.CombineRows(_rowA.AsSpan(0, 3 * validW), _rowB.AsSpan(0, 3 * validW), t.W1, _combined.AsSpan(0, 3 * validW));
                valid = validW;
            }
            for (int c = 0; c < 3; c++)
            {
                var dst = _crop.AsSpan(c * plane + oy * p.OutWidth, p.OutWidth);
                NarrowToBytes(_combined.AsSpan(c * validW, valid), dst);
                dst[valid..].Fill(padRgb[c]);
            }
        }
    }

    // Values are in [0, 255], so the truncating narrowings (int to short to byte) are exact; 32 at a time where the CPU allows.
    private static void NarrowToBytes(ReadOnlySpan<int> src, Span<byte> dst)
    {
        int x = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; x <= src.Length - 32; x += 32)
            {
                var lo = Vector256.Narrow(Vector256.Create(src.Slice(x, 8)), Vector256.Create(src.Slice(x + 8, 8)));
                var hi = Vector256.Narrow(Vector256.Create(src.Slice(x + 16, 8)), Vector256.Create(src.Slice(x + 24, 8)));
                Vector256.Narrow(lo.AsUInt16(), hi.AsUInt16()).CopyTo(dst[x..]);
            }
        for (; x < src.Length; x++) dst[x] = (byte)src[x];
    }

    private void MaskCrop(ReadOnlySpan<byte> mask, int h, int w, in AugmentParams p, int validH, int validW, int padMask, Span<long> outMask)
    {
        var cols = _maskCols.AsSpan(0, validW);
        int previous = -1;
        for (int oy = 0; oy < p.OutHeight; oy++)
        {
            var o = outMask.Slice(oy * p.OutWidth, p.OutWidth);
            if (mask.IsEmpty || oy >= validH)
            {
                o.Fill(padMask);
                continue;
            }
            int sy = ImageKernels.NearestIndex(p.CropY + oy, h, p.ScaledHeight);
            if (sy == previous)
            {
                // Upscaling repeats source rows: copy the row above instead of gathering it again.
                outMask.Slice((oy - 1) * p.OutWidth, p.OutWidth).CopyTo(o);
                continue;
            }
            previous = sy;
            var r = mask.Slice(sy * w, w);
            for (int ox = 0; ox < validW; ox++) o[ox] = r[cols[ox]];
            o[validW..].Fill(padMask);
        }
    }

    internal static void Grow<T>(ref T[] buffer, int length)
    {
        if (buffer.Length < length) buffer = new T[Math.Max(length, buffer.Length * 3 / 2)];
    }
}
