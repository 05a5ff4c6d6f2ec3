using System.Diagnostics;
using DeepLabTorch.Data;
using Xunit;

namespace DeepLabTorch.Tests.Data;

/// <summary>
/// A bounded, seeded run of the photo decoder (SkiaSharp) over mutated JPEGs, PNGs and BMPs: every call returns
/// a complete image or throws DataException. Anything else (or a crash of the native decoder) fails.
/// </summary>
public class PhotoFuzzTests
{
    [Fact]
    public void MutatedPhotosOnlyEverThrowDataException()
    {
        int h = 40, w = 56;
        var rgb = new byte[h * w * 3];
        for (int i = 0; i < rgb.Length; i++) rgb[i] = (byte)(i % 3 == 0 ? i / 3 % w * 4 : i * 13 % 251);
        byte[][] seeds = [ImageCodec.EncodeJpeg(rgb, h, w, 85), ImageCodec.EncodePng(rgb, h, w), Bmp(rgb, h, w)];
        var rnd = new Random(777);
        var clock = Stopwatch.StartNew();
        int runs = 0, accepted = 0;
        while (clock.Elapsed < TimeSpan.FromSeconds(2))
        {
            var data = (byte[])seeds[rnd.Next(seeds.Length)].Clone();
            if (rnd.Next(3) == 0) data = data[..rnd.Next(data.Length)];
            else for (int k = rnd.Next(1, 6); k > 0; k--) data[rnd.Next(data.Length)] = (byte)rnd.Next(256);
            try
            {
                var (img, ih, iw) = ImageCodec.DecodeImage("fuzz", data);
                Assert.Equal(ih * iw * 3, img.Length);
                accepted++;
            }
            catch (DataException)
            {
            }
            runs++;
        }
        Assert.True(runs > 100 && accepted > 0, $"{runs} runs, {accepted} accepted");
    }

    // A 24-bit bottom-up BMP (BITMAPINFOHEADER), written here so the seeds cover a third format.
    private static byte[] Bmp(byte[] rgb, int h, int w)
    {
        int row = (w * 3 + 3) & ~3, size = 54 + row * h;
        var b = new byte[size];
        b[0] = (byte)'B';
        b[1] = (byte)'M';
        BitConverter.TryWriteBytes(b.AsSpan(2), size);
        BitConverter.TryWriteBytes(b.AsSpan(10), 54);
        BitConverter.TryWriteBytes(b.AsSpan(14), 40);
        BitConverter.TryWriteBytes(b.AsSpan(18), w);
        BitConverter.TryWriteBytes(b.AsSpan(22), h);
        BitConverter.TryWriteBytes(b.AsSpan(26), (short)1);
        BitConverter.TryWriteBytes(b.AsSpan(28), (short)24);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++)
                    b[54 + (h - 1 - y) * row + 3 * x + c] = rgb[(y * w + x) * 3 + 2 - c];
        return b;
    }

    [Fact]
    public void OurBmpSeedDecodesExactly()
    {
        var rgb = new byte[5 * 3 * 3];
        for (int i = 0; i < rgb.Length; i++) rgb[i] = (byte)(i * 17);
        Assert.Equal(rgb, ImageCodec.DecodeImage("b.bmp", Bmp(rgb, 5, 3)).Rgb);
    }
}
