using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DeepLabTorch.Data;

/// <summary>
/// Separable Gaussian blur of planar uint8 channels (edges replicated), fused with the normalisation into planar
/// floats: per output row, the vertical taps first (uint8 to float), then the horizontal taps over an edge-padded
/// float row, rounded to 8 bits like an image filter would. Each element is summed in the same tap order whether
/// vectorised or not, so the result does not depend on the hardware.
/// </summary>
internal sealed class BlurKernel
{
    private const int MaxRadius = 32;
    private float[] _plane = [], _vertical = [], _horizontal = [], _taps = [];

    public void Run(ReadOnlySpan<byte> planes, int h, int w, float sigma, ReadOnlySpan<float> scale, ReadOnlySpan<float> offset, Span<float> output)
    {
        int radius = Math.Min(MaxRadius, (int)MathF.Ceiling(3.0f * sigma));
        var k = Taps(sigma, radius);
        int plane = h * w;
        AugmentKernel.Grow(ref _plane, plane);
        AugmentKernel.Grow(ref _vertical, w + 2 * radius);
        AugmentKernel.Grow(ref _horizontal, w);
        var source = _plane.AsSpan(0, plane);
        var v = _vertical.AsSpan(0, w + 2 * radius);
        var hz = _horizontal.AsSpan(0, w);
        for (int c = 0; c < 3; c++)
        {
            // Each byte becomes a float once, not once per vertical tap.
            ToFloat(planes.Slice(c * plane, plane), source);
            for (int y = 0; y < h; y++)
            {
                VerticalTaps(source, h, w, y, k, v.Slice(radius, w));
                v[..radius].Fill(v[radius]);
                v[(radius + w)..].Fill(v[radius + w - 1]);
                HorizontalTaps(v, k, hz);
                RoundAndNormalize(hz, scale[c], offset[c], output.Slice(c * plane + y * w, w));
            }
        }
    }

    private static void ToFloat(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int x = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; x <= src.Length - 8; x += 8)
            {
                var u16 = Vector128.WidenLower(Vector128.CreateScalarUnsafe(MemoryMarshal.Read<ulong>(src[x..])).AsByte());
                Vector256.ConvertToSingle(Vector256.Create(Vector128.WidenLower(u16), Vector128.WidenUpper(u16)).AsInt32()).CopyTo(dst[x..]);
            }
        for (; x < src.Length; x++) dst[x] = src[x];
    }

    // Weights are positive and sum to 1, so a value is in [0, 255]: truncation after +0.5 rounds to 8 bits, as an image filter would.
    private static void RoundAndNormalize(ReadOnlySpan<float> values, float a, float b, Span<float> dst)
    {
        int x = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var half = Vector256.Create(0.5f);
            var max = Vector256.Create(255);
            var va = Vector256.Create(a);
            var vb = Vector256.Create(b);
            for (; x <= values.Length - 8; x += 8)
            {
                var q = Vector256.Min(Vector256.ConvertToInt32(Vector256.Create(values.Slice(x, 8)) + half), max);
                (Vector256.ConvertToSingle(q) * va + vb).CopyTo(dst[x..]);
            }
        }
        for (; x < values.Length; x++) dst[x] = Math.Min((int)(values[x] + 0.5f), 255) * a + b;
    }

    private ReadOnlySpan<float> Taps(float sigma, int radius)
    {
        AugmentKernel.Grow(ref _taps, 2 * radius + 1);
        var k = _taps.AsSpan(0, 2 * radius + 1);
        float sum = 0;
        for (int i = -radius; i <= radius; i++) sum += k[i + radius] = MathF.Exp(-0.5f * i * i / (sigma * sigma));
        for (int i = 0; i < k.Length; i++) k[i] /= sum;
        return k;
    }

    // v[x] = sum over taps i (in order) of k[i] * source[clamp(y + i - radius)][x], accumulated in registers.
    private static void VerticalTaps(ReadOnlySpan<float> source, int h, int w, int y, ReadOnlySpan<float> k, Span<float> v)
    {
        int radius = k.Length / 2;
        Span<int> rows = stackalloc int[k.Length];
        for (int i = 0; i < k.Length; i++) rows[i] = Math.Clamp(y + i - radius, 0, h - 1) * w;
        ref float src = ref MemoryMarshal.GetReference(source);
        int x = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; x <= w - 8; x += 8)
            {
                var acc = Vector256<float>.Zero;
                for (int i = 0; i < k.Length; i++) acc += Vector256.Create(k[i]) * Vector256.LoadUnsafe(ref src, (nuint)(rows[i] + x));
                acc.CopyTo(v[x..]);
            }
        for (; x < w; x++)
        {
            float acc = 0;
            for (int i = 0; i < k.Length; i++) acc += k[i] * source[rows[i] + x];
            v[x] = acc;
        }
    }

    // hz[x] = sum over taps i (in order) of k[i] * v[x + i], v being the edge-padded row.
    private static void HorizontalTaps(ReadOnlySpan<float> v, ReadOnlySpan<float> k, Span<float> hz)
    {
        ref float src = ref MemoryMarshal.GetReference(v);
        int x = 0, w = hz.Length;
        if (Vector256.IsHardwareAccelerated)
            for (; x <= w - 8; x += 8)
            {
                var acc = Vector256<float>.Zero;
                for (int i = 0; i < k.Length; i++) acc += Vector256.Create(k[i]) * Vector256.LoadUnsafe(ref src, (nuint)(x + i));
                acc.CopyTo(hz[x..]);
            }
        for (; x < w; x++)
        {
            float acc = 0;
            for (int i = 0; i < k.Length; i++) acc += k[i] * v[x + i];
            hz[x] = acc;
        }
    }
}
