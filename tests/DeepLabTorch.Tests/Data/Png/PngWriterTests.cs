using System.Text.Json;
using DeepLabTorch.Data;
using DeepLabTorch.Data.Png;
using Xunit;

namespace DeepLabTorch.Tests.Data.Png;

public class PngWriterTests
{
    private static JsonElement PilRead(string path, out byte[] pixels)
    {
        var info = JsonDocument.Parse(DataTestUtil.Python("png_fixtures.py", "read", path, path + ".bin")).RootElement;
        pixels = File.ReadAllBytes(path + ".bin");
        return info;
    }

    [LinuxFact(LinuxOnly.Python)]
    public void PilReadsOurPaletteMasksWithTheSameIndicesAndPalette()
    {
        var dir = DataTestUtil.TempDir("pngw");
        int h = 19, w = 23;
        var idx = new byte[h * w];
        for (int i = 0; i < idx.Length; i++) idx[i] = (byte)(i % 29 == 0 ? 255 : i * 5 % 21);
        var voc = Path.Combine(dir, "voc.png");
        ImageCodec.WritePalettePng(voc, idx, h, w);
        var info = PilRead(voc, out var pixels);
        Assert.Equal("P", info.GetProperty("mode").GetString());
        Assert.Equal(idx, pixels);
        // The VOC map written by the Python reference's own formula: 1 (128,0,0), 15 (192,128,128), 255 (224,224,192).
        var pal = info.GetProperty("palette").EnumerateArray().Select(v => v.GetInt32()).ToArray();
        Assert.Equal(new[] { 128, 0, 0 }, pal[3..6]);
        Assert.Equal(new[] { 192, 128, 128 }, pal[45..48]);
        Assert.Equal(new[] { 224, 224, 192 }, pal[765..768]);

        // A checkpoint's own palette of 3 colours.
        var small = new byte[] { 0, 0, 0, 10, 200, 30, 250, 1, 2 };
        var three = idx.Select(v => (byte)(v % 3)).ToArray();
        var custom = Path.Combine(dir, "custom.png");
        ImageCodec.WritePalettePng(custom, three, h, w, small);
        info = PilRead(custom, out pixels);
        Assert.Equal(three, pixels);
        Assert.Equal(small.Select(b => (int)b), info.GetProperty("palette").EnumerateArray().Select(v => v.GetInt32()).Take(9));
    }

    [LinuxFact(LinuxOnly.Python)]
    public void PilReadsOurGrayAndRgbPngs()
    {
        var dir = DataTestUtil.TempDir("pngw");
        int h = 21, w = 34;
        var gray = new byte[h * w];
        var rgb = new byte[h * w * 3];
        var rnd = new Random(9);
        rnd.NextBytes(rgb);
        // Smooth rows and noisy rows, so the adaptive filter picks several filters.
        for (int i = 0; i < gray.Length; i++) gray[i] = (byte)(i / w % 2 == 0 ? i % w * 7 : rgb[i]);
        for (int i = 0; i < rgb.Length / 2; i++) rgb[i] = (byte)(i % (3 * w));
        var g = Path.Combine(dir, "g.png");
        ImageCodec.WriteGrayPng(g, gray, h, w);
        Assert.Equal("L", PilRead(g, out var pixels).GetProperty("mode").GetString());
        Assert.Equal(gray, pixels);
        var c = Path.Combine(dir, "c.png");
        ImageCodec.WritePng(c, rgb, h, w);
        Assert.Equal("RGB", PilRead(c, out pixels).GetProperty("mode").GetString());
        Assert.Equal(rgb, pixels);
        var filters = PngTestFiles.RawIdat(File.ReadAllBytes(c)).Where((_, i) => i % (1 + 3 * w) == 0).Distinct().Count();
        Assert.True(filters >= 2, "the adaptive filter should not use one filter for everything");
    }

    [Fact]
    public void WrittenFilesRoundTripThroughOurReader()
    {
        var idx = Enumerable.Range(0, 6 * 5).Select(i => (byte)(i * 9)).ToArray();
        var png = PngWriter.EncodeGray(idx, 6, 5);
        var back = PngReader.Read("g.png", png);
        Assert.Equal((PngColorType.Gray, 8, 5, 6), (back.Header.ColorType, back.Header.BitDepth, back.Width, back.Height));
        Assert.Equal(idx, back.Samples);
        Assert.Throws<ArgumentException>(() => PngWriter.EncodePalette(idx, 6, 5, new byte[4]));
        Assert.Throws<ArgumentException>(() => PngWriter.EncodeGray(idx, 5, 5));
    }
}
