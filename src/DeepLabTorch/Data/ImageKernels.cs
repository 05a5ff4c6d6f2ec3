using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace DeepLabTorch.Data;

/// <summary>
/// Resampling, the fused training augmentation and normalisation of HWC uint8 images, in managed code.
/// Bilinear taps are 11-bit fixed point with half-pixel centres (torch align_corners=False, no antialiasing);
/// nearest takes floor((o + 0.5) * src / dst). Every output depends only on the inputs: deterministic.
/// </summary>
internal static class ImageKernels
{
    private const int Shift = 11;
    internal const int One = 1 << Shift;
    private const int Half = 1 << (2 * Shift - 1);

    /// <summary>The two source indices and the weight of the second (the first weighs One - W1).</summary>
    internal readonly record struct Tap(int I0, int I1, int W1);

    internal static Tap BilinearTap(int o, int src, int dst)
    {
        double f = (o + 0.5) * ((double)src / dst) - 0.5;
        if (f < 0) f = 0;
        int i0 = Math.Min((int)f, src - 1);
        int i1 = i0 + 1 < src ? i0 + 1 : i0;
        int w1 = i1 == i0 ? 0 : (int)Math.Round((f - i0) * One, MidpointRounding.AwayFromZero);
        return new Tap(i0, i1, w1);
    }

    internal static int NearestIndex(int o, int src, int dst)
    {
        long i = (long)Math.Floor((o + 0.5) * src / dst);
        return (int)Math.Clamp(i, 0, src - 1);
    }

    /// <summary>Bilinear resize of HWC pixels with any channel count.</summary>
    public static void ResizeBilinear(ReadOnlySpan<byte> src, int h, int w, int c, Span<byte> dst, int oh, int ow)
    {
        var tx = new Tap[ow];
        for (int x = 0; x < ow; x++) tx[x] = BilinearTap(x, w, ow);
        for (int y = 0; y < oh; y++)
        {
            var t = BilinearTap(y, h, oh);
            var r0 = src.Slice(t.I0 * w * c, w * c);
            var r1 = src.Slice(t.I1 * w * c, w * c);
            var o = dst.Slice(y * ow * c, ow * c);
            for (int x = 0; x < ow; x++)
            {
                int a = tx[x].I0 * c, b = tx[x].I1 * c, wx1 = tx[x].W1, wx0 = One - wx1;
                for (int ch = 0; ch < c; ch++)
                {
                    int top = r0[a + ch] * wx0 + r0[b + ch] * wx1;
                    int bottom = r1[a + ch] * wx0 + r1[b + ch] * wx1;
                    o[x * c + ch] = (byte)Math.Min(255, (top * (One - t.W1) + bottom * t.W1 + Half) >> (2 * Shift));
                }
            }
        }
    }

    /// <summary>Nearest-neighbour resize of a single-channel map.</summary>
    public static void ResizeNearest(ReadOnlySpan<byte> src, int h, int w, Span<byte> dst, int oh, int ow)
    {
        var xs = new int[ow];
        for (int x = 0; x < ow; x++) xs[x] = NearestIndex(x, w, ow);
        for (int y = 0; y < oh; y++)
        {
            var r = src.Slice(NearestIndex(y, h, oh) * w, w);
            var o = dst.Slice(y * ow, ow);
            for (int x = 0; x < ow; x++) o[x] = r[xs[x]];
        }
    }

    /// <summary>HWC bytes to planar CHW floats v * scale[c] + offset[c].</summary>
    public static void Normalize(ReadOnlySpan<byte> rgb, int h, int w, ReadOnlySpan<float> scale, ReadOnlySpan<float> offset, Span<float> chw)
    {
        int plane = h * w;
        Span<float> lut = stackalloc float[256];
        for (int ch = 0; ch < 3; ch++)
        {
            for (int v = 0; v < 256; v++) lut[v] = v * scale[ch] + offset[ch];
            var dst = chw.Slice(ch * plane, plane);
            for (int i = 0; i < plane; i++) dst[i] = lut[rgb[3 * i + ch]];
        }
    }

    /// <summary>The normalisation a = 1/(255 std), b = -mean/std: (v/255 - mean)/std = v*a + b.</summary>
    public static (float[] Scale, float[] Offset) NormalizationOf(ReadOnlySpan<float> mean, ReadOnlySpan<float> std)
    {
        var a = new float[3];
        var b = new float[3];
        for (int c = 0; c < 3; c++)
        {
            a[c] = 1.0f / (255.0f * std[c]);
            b[c] = -mean[c] / std[c];
        }
        return (a, b);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Combine(int top, int bottom, int wy0, int wy1) => Math.Min(255, (top * wy0 + bottom * wy1 + Half) >> (2 * Shift));

    /// <summary>(top*wy0 + bottom*wy1 + half) >> 22, clamped to 255, for a run of horizontally interpolated values.</summary>
    internal static void CombineRows(ReadOnlySpan<int> top, ReadOnlySpan<int> bottom, int wy1, Span<int> output)
    {
        int wy0 = One - wy1, i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var v0 = Vector256.Create(wy0);
            var v1 = Vector256.Create(wy1);
            var half = Vector256.Create(Half);
            var max = Vector256.Create(255);
            for (; i <= output.Length - Vector256<int>.Count; i += Vector256<int>.Count)
            {
                var t = Vector256.Create(top.Slice(i, Vector256<int>.Count));
                var b = Vector256.Create(bottom.Slice(i, Vector256<int>.Count));
                var v = Vector256.ShiftRightArithmetic(t * v0 + b * v1 + half, 2 * Shift);
                Vector256.Min(v, max).CopyTo(output.Slice(i));
            }
        }
        for (; i < output.Length; i++) output[i] = Combine(top[i], bottom[i], wy0, wy1);
    }

    /// <summary>output = values * a + b, in float, vectorised where the hardware allows (same result per element).</summary>
    internal static void ScaleToFloat(ReadOnlySpan<int> values, float a, float b, Span<float> output)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var va = Vector256.Create(a);
            var vb = Vector256.Create(b);
            for (; i <= values.Length - Vector256<int>.Count; i += Vector256<int>.Count)
            {
                var v = Vector256.ConvertToSingle(Vector256.Create(values.Slice(i, Vector256<int>.Count)));
                (v * va + vb).CopyTo(output.Slice(i));
            }
        }
        for (; i < values.Length; i++) output[i] = values[i] * a + b;
    }
}
