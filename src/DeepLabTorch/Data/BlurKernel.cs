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
    private float[] _vertical = [], _horizontal = [], _taps = [];

    public void Run(ReadOnlySpan<byte> planes, int h, int w, float sigma, ReadOnlySpan<float> scale, ReadOnlySpan<float> offset, Span<float> output)
    {
        int radius = Math.Min(MaxRadius, (int)MathF.Ceiling(3.0f * sigma));
        var k = Taps(sigma, radius);
        AugmentKernel.Grow(ref _vertical, w + 2 * radius);
        AugmentKernel.Grow(ref _horizontal, w);
        int plane = h * w;
        for (int c = 0; c < 3; c++)
        {
            var src = planes.Slice(c * plane, plane);
            for (int y = 0; y < h; y++)
            {
                var v = _vertical.AsSpan(0, w + 2 * radius);
                VerticalTaps(src, h, w, y, k, radius, v.Slice(radius, w));
                v[..radius].Fill(v[radius]);
                v[(radius + w)..].Fill(v[radius + w - 1]);
                var hz = _horizontal.AsSpan(0, w);
                hz.Clear();
                for (int i = 0; i < k.Length; i++) AddScaled(v.Slice(i, w), k[i], hz);
                var dst = output.Slice(c * plane + y * w, w);
                float a = scale[c], b = offset[c];
                for (int x = 0; x < w; x++)
                {
                    // Weights are positive and sum to 1, so the value is in [0, 255]: truncation after +0.5 rounds.
                    int q = (int)(hz[x] + 0.5f);
                    dst[x] = Math.Min(q, 255) * a + b;
                }
            }
        }
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

    private static void VerticalTaps(ReadOnlySpan<byte> src, int h, int w, int y, ReadOnlySpan<float> k, int radius, Span<float> v)
    {
        v.Clear();
        for (int i = -radius; i <= radius; i++)
        {
            int yy = Math.Clamp(y + i, 0, h - 1);
            var row = src.Slice(yy * w, w);
            float ki = k[i + radius];
            int x = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                var vk = Vector256.Create(ki);
                for (; x <= w - 8; x += 8)
                {
                    var u16 = Vector128.WidenLower(Vector128.CreateScalarUnsafe(MemoryMarshal.Read<ulong>(row[x..])).AsByte());
                    var ints = Vector256.Create(Vector128.WidenLower(u16), Vector128.WidenUpper(u16)).AsInt32();
                    var acc = Vector256.Create(v.Slice(x, 8));
                    (acc + vk * Vector256.ConvertToSingle(ints)).CopyTo(v.Slice(x));
                }
            }
            for (; x < w; x++) v[x] += ki * row[x];
        }
    }

    private static void AddScaled(ReadOnlySpan<float> src, float k, Span<float> acc)
    {
        int x = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var vk = Vector256.Create(k);
            for (; x <= acc.Length - 8; x += 8)
                (Vector256.Create(acc.Slice(x, 8)) + vk * Vector256.Create(src.Slice(x, 8))).CopyTo(acc.Slice(x));
        }
        for (; x < acc.Length; x++) acc[x] += k * src[x];
    }
}
