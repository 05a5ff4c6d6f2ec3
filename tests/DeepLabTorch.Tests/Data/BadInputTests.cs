using DeepLabTorch.Data;
using Xunit;

namespace DeepLabTorch.Tests.Data;

public class BadInputTests
{
    /// <summary>A VOC tree with one good image and one planted fault per kind; returns (root, voc).</summary>
    private static (string Root, string Voc) Planted()
    {
        var root = DataTestUtil.TempDir("bad");
        var ids = new[] { "good", "nojpeg", "corruptjpeg", "truncpng", "sizes", "values", "truncjpeg" };
        var voc = DataTestUtil.TinyVoc(root, ids, train: ids, val: new[] { "good" });
        string Img(string id) => Path.Combine(voc, "JPEGImages", id + ".jpg");
        string Mask(string id) => Path.Combine(voc, "SegmentationClass", id + ".png");
        File.Delete(Img("nojpeg"));
        File.WriteAllBytes(Img("corruptjpeg"), new byte[] { 0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 4, 5, 6, 7, 8 });
        var png = File.ReadAllBytes(Mask("truncpng"));
        File.WriteAllBytes(Mask("truncpng"), png[..(png.Length / 2)]);
        ImageCodec.WritePalettePng(Mask("sizes"), new byte[10 * 10], 10, 10);
        var bad = new byte[40 * 30];
        bad[5] = 42;
        ImageCodec.WritePalettePng(Mask("values"), bad, 30, 40);
        var rgb = new byte[64 * 48 * 3];
        for (int i = 0; i < rgb.Length; i++) rgb[i] = (byte)(i * 7);
        var jpg = ImageCodec.EncodeJpeg(rgb, 48, 64, 90);
        File.WriteAllBytes(Img("truncjpeg"), jpg[..(jpg.Length * 2 / 3)]);
        return (root, voc);
    }

    [Fact]
    public void EachBadInputGivesANamedError()
    {
        var (root, voc) = Planted();
        var ds = Datasets.Open(new DataOptions { DataRoot = root }, "train");
        var expected = new Dictionary<string, (string File, string Reason)>
        {
            ["nojpeg"] = ("nojpeg.jpg", "not found"),
            ["corruptjpeg"] = ("corruptjpeg.jpg", "JPEG"),
            ["truncpng"] = ("truncpng.png", "PNG"),
            ["sizes"] = ("sizes.png", "10x10"),
            ["values"] = ("values.png", "mask value 42"),
            ["truncjpeg"] = ("truncjpeg.jpg", "JPEG"),
        };
        ds.Load(0);
        for (int i = 1; i < ds.Count; i++)
        {
            var id = ((FileDataset)ds).Entries[i].Id;
            var e = Assert.Throws<DataException>(() => ds.Load(i));
            Assert.EndsWith(expected[id].File, e.Path);
            Assert.Contains(expected[id].Reason, e.Message);
        }
        // Split lists: missing and empty.
        File.Delete(Path.Combine(voc, "ImageSets", "Segmentation", "val.txt"));
        var missing = Assert.Throws<DataException>(() => Datasets.Open(new DataOptions { DataRoot = root }, "val"));
        Assert.EndsWith("val.txt", missing.Path);
        File.WriteAllText(Path.Combine(voc, "ImageSets", "Segmentation", "val.txt"), "\n  \n");
        var empty = Assert.Throws<DataException>(() => Datasets.Open(new DataOptions { DataRoot = root }, "val"));
        Assert.Contains("empty", empty.Reason);
    }

    [Fact]
    public void CheckListsEveryBadFile()
    {
        var (root, _) = Planted();
        var report = DataChecker.Run(new DataOptions { DataRoot = root });
        Assert.Equal(7, report.Samples);
        Assert.Equal(6, report.Problems.Count);
        foreach (var f in new[] { "nojpeg.jpg", "corruptjpeg.jpg", "truncpng.png", "sizes.png", "values.png", "truncjpeg.jpg" })
            Assert.Contains(report.Problems, p => p.Contains(f));
        Assert.False(report.Clean);
        Assert.Contains("BAD", report.Format());
        Assert.Equal(27L * 30, report.ClassPixels[1]); // only the good image counts: class 1 in columns 13-39
    }

    [Fact]
    public void SkipBadCountsAndContinues_OtherwiseTheLoaderStops()
    {
        var (root, _) = Planted();
        var o = new DataOptions { DataRoot = root, BaseSize = 32, CropSize = 24, Workers = 2 };
        var ds = Datasets.Open(o, "train");
        using (var loader = new DataLoader(ds, o, true, 7))
        {
            var e = Assert.Throws<DataException>(() => loader.Epoch(0).ToList().ForEach(b => b.Dispose()));
            Assert.NotNull(e.Path);
        }
        var skip = o with { SkipBad = true };
        var log = new CapturingLoggers();
        using var skipping = new DataLoader(ds, skip, false, 1, log: log);
        var batches = skipping.Epoch(0).ToList();
        Assert.Single(batches);
        Assert.Equal("good", batches[0].Ids[0]);
        batches.ForEach(b => b.Dispose());
        Assert.Equal(6, skipping.SkippedSamples);
        Assert.Equal(6, skipping.BadSamples.Count);
        // Each one a warning with the file and the reason as properties.
        Assert.Equal(6, log.Records.Count(r => r.Level == Microsoft.Extensions.Logging.LogLevel.Warning && r.Text.StartsWith("skipping bad sample: ", StringComparison.Ordinal)));
        Assert.All(log.Records, r => Assert.True(r.Properties.ContainsKey("File") && r.Properties.ContainsKey("Reason")));
    }

    [Fact]
    public void CliDataCheckExitsNonZeroOnBadSets()
    {
        var (root, _) = Planted();
        var clean = DataTestUtil.TempDir("clean");
        Synthetic.Generate(clean, 6, 2, "voc", 48, 40);
        var (code, output) = CliRunner.Run("data", "check", "--dataset", "pascal", "--data-root", root);
        Assert.Equal(1, code);
        Assert.Contains("truncpng.png", output);
        Assert.Contains("6 problem(s)", output);
        var (code2, output2) = CliRunner.Run("data", "check", "--dataset", "pascal", "--data-root", clean);
        Assert.Equal(0, code2);
        Assert.Contains("clean", output2);
    }

    [LinuxFact(LinuxOnly.Python)]
    public void CheckNamesUnreadableMatFilesInSbd()
    {
        var sbd = Path.Combine(DataTestUtil.TempDir("sbdbad"), "benchmark_RELEASE", "dataset");
        Directory.CreateDirectory(Path.Combine(sbd, "img"));
        Directory.CreateDirectory(Path.Combine(sbd, "cls"));
        var (rgb, _) = DataTestUtil.TwoRegionSample(11, 7, 3);
        foreach (var id in new[] { "ok", "broken" }) ImageCodec.WritePng(Path.Combine(sbd, "img", id + ".jpg"), rgb, 7, 11);
        File.Copy(Path.Combine(DataTestUtil.MatFixtures, "u8_zlib.mat"), Path.Combine(sbd, "cls", "ok.mat"));
        var bytes = File.ReadAllBytes(Path.Combine(DataTestUtil.MatFixtures, "u8_zlib.mat"));
        for (int i = 200; i < bytes.Length; i++) bytes[i] ^= 0x5A; // corrupt the zlib stream
        File.WriteAllBytes(Path.Combine(sbd, "cls", "broken.mat"), bytes);
        File.WriteAllLines(Path.Combine(sbd, "train.txt"), new[] { "ok", "broken" });
        File.WriteAllLines(Path.Combine(sbd, "val.txt"), new[] { "ok" });
        var report = DataChecker.Run(new DataOptions { Dataset = "sbd", DataRoot = Path.GetDirectoryName(Path.GetDirectoryName(sbd))! });
        Assert.Equal(2, report.Samples);
        var problem = Assert.Single(report.Problems);
        Assert.Contains("broken.mat", problem);
        Assert.Contains("MAT", problem);
    }
}
