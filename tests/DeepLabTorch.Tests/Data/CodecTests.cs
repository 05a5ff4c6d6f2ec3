using System.Text.Json;
using DeepLabTorch.Data;
using DeepLabTorch.Extensions;
using Xunit;

namespace DeepLabTorch.Tests.Data;

public class CodecTests
{
    private static string Fx(string name) => Path.Combine(DataTestUtil.ImageFixtures, name);

    [LinuxFact(LinuxOnly.Python)]
    public void SolidJpegDecodesToItsColour()
    {
        var (rgb, h, w) = ImageCodec.DecodeImage(Fx("solid.jpg"));
        Assert.Equal((16, 16), (h, w));
        for (int i = 0; i < h * w; i++)
        {
            Assert.InRange(rgb[3 * i], 198, 202);
            Assert.InRange(rgb[3 * i + 1], 98, 102);
            Assert.InRange(rgb[3 * i + 2], 48, 52);
        }
    }

    [LinuxFact(LinuxOnly.Python)]
    public void JpegMatchesPilDecode()
    {
        var (rgb, h, w) = ImageCodec.DecodeImage(Fx("pattern.jpg"));
        Assert.Equal((24, 40), (h, w));
        var expected = DataTestUtil.Bin(Fx("pattern.jpg.bin"));
        Assert.Equal(expected.Length, rgb.Length);
        int maxDiff = expected.Zip(rgb, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(maxDiff <= 2, $"max difference to PIL's decode is {maxDiff}");
    }

    [LinuxTheory(LinuxOnly.Python)]
    [InlineData("photo.bmp", 0)]
    [InlineData("photo.webp", 0)]
    [InlineData("cmyk.jpg", 2)]
    [InlineData("progressive.jpg", 2)]
    [InlineData("exif6.jpg", 2)]
    public void OtherPhotoFormatsDecodeLikePil(string file, int tolerance)
    {
        var (rgb, h, w) = ImageCodec.DecodeImage(Fx(file));
        // Stored orientation: an EXIF rotation is not applied (as before), so the size is not swapped.
        Assert.Equal((24, 40), (h, w));
        Assert.Equal((24, 40), ImageCodec.Probe(file, File.ReadAllBytes(Fx(file))));
        var expected = DataTestUtil.Bin(Fx(tolerance == 0 ? "photo.bin" : file + ".bin"));
        int maxDiff = expected.Zip(rgb, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(maxDiff <= tolerance, $"max difference to PIL's decode is {maxDiff}");
    }

    [LinuxTheory(LinuxOnly.Python)]
    [InlineData("pattern.jpg", "JPEG")]
    [InlineData("progressive.jpg", "JPEG")]
    [InlineData("photo.webp", "WEBP")]
    [InlineData("rgb.png", "PNG")]
    public void TruncatedPhotosAreErrorsNotPartlyBlackImages(string file, string reason)
    {
        var bytes = File.ReadAllBytes(Fx(file));
        foreach (var cut in new[] { bytes.Length * 2 / 3, bytes.Length / 3 })
        {
            var e = Assert.Throws<DataException>(() => ImageCodec.DecodeImage("cut/" + file, bytes.AsSpan(0, cut)));
            Assert.Equal("cut/" + file, e.Path);
            Assert.Contains(reason, e.Reason);
        }
    }

    [LinuxTheory(LinuxOnly.Python)]
    [InlineData("gray_mask.jpg", 0)]
    [InlineData("pattern.jpg", 1)]
    public void JpegMasksReadAsLuminance(string file, int tolerance)
    {
        var (gray, h, w) = ImageCodec.DecodeMask(Fx(file));
        Assert.Equal((24, 40), (h, w));
        var expected = DataTestUtil.Bin(Fx(file + ".L.bin"));
        int maxDiff = expected.Zip(gray, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(maxDiff <= tolerance, $"max difference to PIL's luminance is {maxDiff}");
    }

    [Fact]
    public void TruncatedJpegScanIsRefusedAsIncomplete()
    {
        // Large enough that a cut falls inside the scan, where Skia would fill the rest: we refuse it instead.
        int h = 120, w = 160;
        var rgb = new byte[h * w * 3];
        for (int i = 0; i < rgb.Length; i++) rgb[i] = (byte)(i % 3 == 0 ? i / 3 % w : i / (3 * w) * 2 + i % 7);
        var jpg = ImageCodec.EncodeJpeg(rgb, h, w, 90);
        Assert.Equal((h, w), ImageCodec.Probe("whole.jpg", jpg));
        var e = Assert.Throws<DataException>(() => ImageCodec.DecodeImage("cut.jpg", jpg.AsSpan(0, jpg.Length * 2 / 3)));
        Assert.Contains("truncated JPEG", e.Reason);
        var m = Assert.Throws<DataException>(() => ImageCodec.DecodeMask("cut.jpg", jpg.AsSpan(0, jpg.Length * 2 / 3)));
        Assert.Contains("truncated JPEG", m.Reason);
    }

    [LinuxTheory(LinuxOnly.Python)]
    [InlineData("palette.png")]
    [InlineData("palette4.png")]
    [InlineData("gray.png")]
    [InlineData("gray16.png")]
    [InlineData("voc_rgb_mask.png")]
    public void MasksReadAsIndicesNotColours(string file)
    {
        var (idx, h, w) = ImageCodec.DecodeMask(Fx(file));
        Assert.Equal((24, 40), (h, w));
        var expectedFile = file == "gray16.png" ? "gray.png.bin" : file + ".bin";
        Assert.Equal(DataTestUtil.Bin(Fx(expectedFile)), idx);
    }

    [LinuxFact(LinuxOnly.Python)]
    public void SixteenBitMaskAbove255IsRefused()
    {
        var e = Assert.Throws<DataException>(() => ImageCodec.DecodeMask(Fx("gray16_big.png")));
        Assert.Contains("gray16_big.png", e.Message);
        Assert.Contains("does not fit", e.Message);
    }

    [LinuxTheory(LinuxOnly.Python)]
    [InlineData("rgb.png")]
    [InlineData("rgba.png")]
    [InlineData("gray_img.png")]
    [InlineData("palette.png")]
    public void PngImagesDecodeToRgb(string file)
    {
        var (rgb, h, w) = ImageCodec.DecodeImage(Fx(file));
        Assert.Equal((24, 40), (h, w));
        if (file == "palette.png")
        {
            // Expanded through its palette (i*7, i*13, i*29).
            var idx = DataTestUtil.Bin(Fx("palette.png.bin"));
            for (int i = 0; i < idx.Length; i++)
                Assert.Equal(new[] { (byte)(idx[i] * 7 % 256), (byte)(idx[i] * 13 % 256), (byte)(idx[i] * 29 % 256) }, rgb[(3 * i)..(3 * i + 3)]);
        }
        else Assert.Equal(DataTestUtil.Bin(Fx(file + ".bin")), rgb);
    }

    [LinuxFact(LinuxOnly.Python)]
    public void PalettePngRoundTripsAndPilSeesIndices()
    {
        var dir = DataTestUtil.TempDir("pal");
        int h = 9, w = 13;
        var idx = new byte[h * w];
        for (int i = 0; i < idx.Length; i++) idx[i] = (byte)(i % 23 == 0 ? 255 : i % 21);
        var path = Path.Combine(dir, "m.png");
        ImageCodec.WritePalettePng(path, idx, h, w);
        var (back, bh, bw) = ImageCodec.DecodeMask(path);
        Assert.Equal((h, w), (bh, bw));
        Assert.Equal(idx, back);
        var info = JsonDocument.Parse(DataTestUtil.Python("data_fixtures.py", "inspect", path, path + ".bin")).RootElement;
        Assert.Equal("P", info.GetProperty("mode").GetString());
        // VOC map: 0 black, 1 (128,0,0), 2 (0,128,0), 3 (128,128,0).
        Assert.Equal(new[] { 0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0 }, info.GetProperty("palette").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(idx, File.ReadAllBytes(path + ".bin"));
    }

    [Fact]
    public void VocPaletteHasKnownColours()
    {
        var p = Palette.Voc;
        Assert.Equal(768, p.Length);
        Assert.Equal(new byte[] { 192, 128, 128 }, p[(15 * 3)..(15 * 3 + 3)]); // person
        Assert.Equal(new byte[] { 224, 224, 192 }, p[(255 * 3)..(255 * 3 + 3)]); // void
        Assert.Equal("person", VocClasses.Names[15]);
        Assert.Equal(21, VocClasses.Names.Count);
    }

    [Fact]
    public void RgbPngAndJpegRoundTrip()
    {
        var dir = DataTestUtil.TempDir("rgb");
        int h = 16, w = 24;
        var rgb = new byte[h * w * 3];
        for (int i = 0; i < rgb.Length; i++) rgb[i] = (byte)(i * 37 % 251);
        var png = Path.Combine(dir, "a.png");
        ImageCodec.WritePng(png, rgb, h, w);
        Assert.Equal(rgb, ImageCodec.DecodeImage(png).Rgb);
        Assert.Equal(rgb, ImageCodec.DecodeImage("mem", ImageCodec.EncodePng(rgb, h, w)).Rgb);
        // JPEG is lossy: a smooth image comes back close.
        var smooth = new byte[h * w * 3];
        for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) { smooth[(y * w + x) * 3] = (byte)(x * 8); smooth[(y * w + x) * 3 + 1] = (byte)(y * 8); smooth[(y * w + x) * 3 + 2] = 90; }
        var jpg = Path.Combine(dir, "a.jpg");
        ImageCodec.WriteJpeg(jpg, smooth, h, w, 95);
        var (back, bh, bw) = ImageCodec.DecodeImage(jpg);
        Assert.Equal((h, w), (bh, bw));
        Assert.True(smooth.Zip(back, (a, b) => Math.Abs(a - b)).Average() < 3);
    }

    [LinuxFact(LinuxOnly.Python)]
    public void BilinearResizeMatchesTorch()
    {
        var dir = DataTestUtil.TempDir("resize");
        int h = 13, w = 17, c = 3;
        var src = new byte[h * w * c];
        var rnd = new Random(3);
        rnd.NextBytes(src);
        File.WriteAllBytes(Path.Combine(dir, "src.bin"), src);
        foreach (var (oh, ow) in new[] { (26, 34), (7, 9), (13, 40) })
        {
            var ours = ImageCodec.ResizeBilinear(src, h, w, c, oh, ow);
            var refPath = Path.Combine(dir, $"ref{oh}x{ow}.bin");
            DataTestUtil.Python("data_fixtures.py", "resize", Path.Combine(dir, "src.bin"), $"{h}", $"{w}", $"{c}", $"{oh}", $"{ow}", refPath);
            var expected = File.ReadAllBytes(refPath);
            int max = expected.Zip(ours, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(max <= 1, $"{oh}x{ow}: max difference to torch {max}");
        }
    }

    [Fact]
    public void NearestResizeKeepsValues()
    {
        var src = new byte[] { 0, 1, 2, 3 }; // 2x2
        Assert.Equal(new byte[] { 0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3 }, ImageCodec.ResizeNearest(src, 2, 2, 4, 4));
    }

    [Fact]
    public void ImageTensorNormalizes()
    {
        var rgb = new byte[] { 255, 0, 128, 0, 255, 64 }; // 1x2
        using var t = ImageTensor.FromRgb(rgb, 1, 2);
        Assert.Equal(new long[] { 1, 3, 1, 2 }, t.shape);
        var v = t.ToArray<float>();
        Assert.Equal((1f - 0.485f) / 0.229f, v[0], 4); // R of pixel 0
        Assert.Equal((0f - 0.485f) / 0.229f, v[1], 4); // R of pixel 1
        Assert.Equal((0f - 0.456f) / 0.224f, v[2], 4); // G of pixel 0
        Assert.Equal((64 / 255f - 0.406f) / 0.225f, v[5], 4);
    }
}
