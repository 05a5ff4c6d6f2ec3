using DeepLabTorch.Data;
using Xunit;

namespace DeepLabTorch.Tests.Data;

public class SyntheticTests
{
    [Fact]
    public void VocKindWritesARealVocTreeThatChecksClean()
    {
        var dir = DataTestUtil.TempDir("synth");
        var (code, output) = CliRunner.Run("data", "synth", "--out", dir, "--count", "10", "--seed", "4", "--width", "80", "--height", "60");
        Assert.Equal(0, code);
        Assert.Contains("wrote 10", output);
        var voc = Path.Combine(dir, "VOCdevkit", "VOC2012");
        Assert.Equal(8, File.ReadAllLines(Path.Combine(voc, "ImageSets", "Segmentation", "train.txt")).Length);
        Assert.Equal(2, File.ReadAllLines(Path.Combine(voc, "ImageSets", "Segmentation", "val.txt")).Length);
        var jpg = File.ReadAllBytes(Path.Combine(voc, "JPEGImages", "synth_000000.jpg"));
        Assert.Equal(new byte[] { 0xFF, 0xD8, 0xFF }, jpg[..3]);
        var report = DataChecker.Run(new DataOptions { DataRoot = dir });
        Assert.True(report.Clean, report.Format());
        Assert.True(report.IgnorePixels > 0, "void band expected");
        Assert.True(report.ClassPixels.Where((_, c) => c > 0).Sum() > 0);
        Assert.All(new[] { 2, 4, 5, 6 }, c => Assert.Equal(0, report.ClassPixels[c]));
        // Deterministic: the same seed writes the same masks.
        var again = DataTestUtil.TempDir("synth2");
        Synthetic.Generate(again, 10, 4, "voc", 80, 60);
        Assert.Equal(File.ReadAllBytes(Path.Combine(voc, "SegmentationClass", "synth_000003.png")),
            File.ReadAllBytes(Path.Combine(again, "VOCdevkit", "VOC2012", "SegmentationClass", "synth_000003.png")));
    }

    [Fact]
    public void PortraitKindWritesBinaryPairs()
    {
        var dir = DataTestUtil.TempDir("portrait");
        Synthetic.Generate(dir, 5, 1, "portrait", 64, 80);
        var (mask, h, w) = ImageCodec.DecodeMask(Path.Combine(dir, "masks", "synth_000002.png"));
        Assert.Equal((80, 64), (h, w));
        Assert.All(mask, v => Assert.True(v is 0 or 255));
        Assert.Contains(mask, v => v == 255);
        var ds = Datasets.Open(new DataOptions { Dataset = "folder", DataRoot = dir }, "train");
        Assert.Equal(4, ds.Count);
        var s = ds.Load(0);
        Assert.All(s.Mask, v => Assert.True(v is 0 or 1));
        Assert.Contains(s.Mask, v => v == 1);
    }
}
