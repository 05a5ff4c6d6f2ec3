using DeepLabTorch.Data;
using Xunit;

namespace DeepLabTorch.Tests.Data;

public class DatasetTests
{
    private static void WriteSbd(string sbd, string[] ids, string[] train, string[] val)
    {
        Directory.CreateDirectory(Path.Combine(sbd, "img"));
        Directory.CreateDirectory(Path.Combine(sbd, "cls"));
        var mat = File.ReadAllBytes(Path.Combine(DataTestUtil.MatFixtures, "u8_zlib.mat")); // 7x11
        var (rgb, _) = DataTestUtil.TwoRegionSample(11, 7, 3);
        foreach (var id in ids)
        {
            File.WriteAllBytes(Path.Combine(sbd, "cls", id + ".mat"), mat);
            ImageCodec.WritePng(Path.Combine(sbd, "img", id + ".jpg"), rgb, 7, 11);
        }
        File.WriteAllLines(Path.Combine(sbd, "train.txt"), train);
        File.WriteAllLines(Path.Combine(sbd, "val.txt"), val);
    }

    [LinuxFact(LinuxOnly.Python)]
    public void TrainAugDeduplicatesAndExcludesVocVal()
    {
        var root = DataTestUtil.TempDir("trainaug");
        DataTestUtil.TinyVoc(root, new[] { "a", "b", "c", "d" }, train: new[] { "a", "b" }, val: new[] { "c", "d" });
        // SBD: "b" duplicates VOC train, "c" is VOC val (must go), "e" twice, "f" new.
        WriteSbd(Path.Combine(root, "benchmark_RELEASE", "dataset"), new[] { "b", "c", "e", "f" }, train: new[] { "b", "c", "e" }, val: new[] { "e", "f", "d" });
        var logs = new CapturingLoggers();
        {
            var o = new DataOptions { Dataset = "pascal", DataRoot = root };
            var ds = (FileDataset)Datasets.Open(o, "trainaug", logs);
            Assert.Equal(new[] { "a", "b", "e", "f" }, ds.Entries.Select(e => e.Id));
            // VOC's own mask wins for VOC train ids; SBD's .mat fills the rest.
            Assert.EndsWith(".png", ds.Entries[1].MaskPath);
            Assert.EndsWith(Path.Combine("cls", "e.mat"), ds.Entries[2].MaskPath);
            Assert.Contains(logs.Lines, l => l.Contains("trainaug: 4 images"));
            Assert.Equal(4, Assert.Single(logs.Records).Properties["Images"]);
            // UseSbd turns train into trainaug.
            Assert.Equal(4, Datasets.Open(o with { UseSbd = true }, "train").Count);
            Assert.Equal(2, Datasets.Open(o, "val").Count);
            // A .mat sample loads through the same path.
            var s = ds.Load(3);
            Assert.Equal((7, 11), (s.Height, s.Width));
        }
    }

    [Fact]
    public void SegmentationClassAugListIsUsed()
    {
        var root = DataTestUtil.TempDir("aug");
        var voc = DataTestUtil.TinyVoc(root, new[] { "a", "b", "c" }, train: new[] { "a" }, val: new[] { "c" });
        Directory.CreateDirectory(Path.Combine(voc, "SegmentationClassAug"));
        File.WriteAllLines(Path.Combine(voc, "ImageSets", "Segmentation", "train_aug.txt"),
            new[] { "/JPEGImages/a.jpg /SegmentationClassAug/a.png", "/JPEGImages/b.jpg /SegmentationClassAug/b.png", "/JPEGImages/c.jpg /SegmentationClassAug/c.png", "b" });
        var ds = (FileDataset)Datasets.Open(new DataOptions { DataRoot = Path.Combine(root, "VOCdevkit", "VOC2012") }, "trainaug");
        Assert.Equal(new[] { "a", "b" }, ds.Entries.Select(e => e.Id));
        Assert.Contains("SegmentationClassAug", ds.Entries[0].MaskPath);
    }

    [Fact]
    public void FolderPairsBinaryMasksAndSplits()
    {
        var root = DataTestUtil.TempDir("folder");
        Directory.CreateDirectory(Path.Combine(root, "images"));
        Directory.CreateDirectory(Path.Combine(root, "masks"));
        int w = 8, h = 6;
        var rgb = new byte[w * h * 3];
        for (int i = 0; i < 10; i++)
        {
            ImageCodec.WriteJpeg(Path.Combine(root, "images", $"p{i}.jpg"), rgb, h, w);
            var m = new byte[w * h];
            for (int k = 0; k < m.Length; k++) m[k] = (byte)(k % 2 == 0 ? 0 : i % 2 == 0 ? 255 : 1);
            if (i == 3) m[0] = 255; // 0/1 mask with an ignore pixel
            ImageCodec.WriteGrayPng(Path.Combine(root, "masks", $"p{i}.png"), m, h, w);
        }
        var o = new DataOptions { Dataset = "folder", DataRoot = root };
        var train = (FileDataset)Datasets.Open(o, "train");
        var val = (FileDataset)Datasets.Open(o, "val");
        Assert.Equal(8, train.Count);
        Assert.Equal(new[] { "p4", "p9" }, val.Entries.Select(e => e.Id));
        Assert.Equal(new[] { "background", "person" }, train.ClassNames);
        var s0 = Datasets.Open(o, "trainval").Load(0); // p0: 0/255 -> 0/1
        Assert.Equal(new byte[] { 0, 1, 0, 1 }, s0.Mask[..4]);
        var s3 = ((FileDataset)Datasets.Open(o, "trainval")).Load(3); // p3: 0/1 with 255 = ignore
        Assert.Equal(new byte[] { 255, 1, 0, 1 }, s3.Mask[..4]);
        // A list file wins over the fixed rule.
        File.WriteAllLines(Path.Combine(root, "val.txt"), new[] { "p1", "p2" });
        Assert.Equal(new[] { "p1", "p2" }, ((FileDataset)Datasets.Open(o, "val")).Entries.Select(e => e.Id));
    }

    [Fact]
    public void IgnoreValueOptionMapsTo255()
    {
        var root = DataTestUtil.TempDir("ignore");
        Directory.CreateDirectory(Path.Combine(root, "images"));
        Directory.CreateDirectory(Path.Combine(root, "masks"));
        ImageCodec.WritePng(Path.Combine(root, "images", "x.png"), new byte[2 * 2 * 3], 2, 2);
        ImageCodec.WriteGrayPng(Path.Combine(root, "masks", "x.png"), new byte[] { 0, 1, 2, 9 }, 2, 2);
        var o = new DataOptions { Dataset = "folder", DataRoot = root, ClassNames = new[] { "bg", "a", "b" }, IgnoreValue = 9 };
        var s = Datasets.Open(o, "trainval").Load(0);
        Assert.Equal(new byte[] { 0, 1, 2, 255 }, s.Mask);
    }

    [Fact]
    public void VocRootMayBeTheVoc2012Folder()
    {
        var root = DataTestUtil.TempDir("vocroot");
        var voc = DataTestUtil.TinyVoc(root, new[] { "a", "b" }, new[] { "a" }, new[] { "b" });
        Assert.Equal(1, Datasets.Open(new DataOptions { DataRoot = voc }, "train").Count);
        Assert.Equal(2, Datasets.Open(new DataOptions { DataRoot = root }, "trainval").Count);
        Assert.Throws<UserException>(() => Datasets.Open(new DataOptions { DataRoot = Path.Combine(root, "VOCdevkit", "VOC2012", "JPEGImages") }, "train"));
    }
}
