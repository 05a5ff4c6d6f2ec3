using System.Globalization;
using DeepLabTorch.Data;
using Xunit;

namespace DeepLabTorch.Tests.Data;

/// <summary>CelebAMask-HQ's download layout: the part masks merged as the reference prepares them, the splits, bad files.</summary>
public sealed class CelebAMaskHqTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string S(int v) => v.ToString(CultureInfo.InvariantCulture);

    /// <summary>An RGB black-and-white part mask, white where on(x, y).</summary>
    private static void Part(string root, int id, string part, int h, int w, Func<int, int, bool> on)
    {
        var rgb = new byte[h * w * 3];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                if (on(x, y)) rgb[3 * (y * w + x)] = rgb[3 * (y * w + x) + 1] = rgb[3 * (y * w + x) + 2] = 255;
        ImageCodec.WritePng(CelebAMaskHq.PartPath(root, id, part), rgb, h, w);
    }

    private static void Image(string root, int id, int h, int w) =>
        ImageCodec.WriteJpeg(CelebAMaskHq.ImagePath(root, id), Enumerable.Repeat((byte)128, h * w * 3).ToArray(), h, w);

    [Fact]
    public void LaterPartsOverwriteEarlierOnesByHand()
    {
        // Face 2003 lives in folder 1. Skin everywhere, hair on the top two rows, the left eye at (1, 1) under
        // the hair (eye 4 < hair 17: hair wins), the nose at (2, 3).
        var root = _dir.Path;
        Directory.CreateDirectory(Path.Combine(root, CelebAMaskHq.ImageFolder));
        Part(root, 2003, "skin", 4, 4, (_, _) => true);
        Part(root, 2003, "hair", 4, 4, (_, y) => y < 2);
        Part(root, 2003, "l_eye", 4, 4, (x, y) => (x, y) == (1, 1));
        Part(root, 2003, "nose", 4, 4, (x, y) => (x, y) == (2, 3));
        Assert.True(File.Exists(Path.Combine(root, CelebAMaskHq.AnnotationFolder, "1", "02003_skin.png")));
        var (labels, h, w) = CelebAMaskHq.Merge(root, 2003);
        Assert.Equal((4, 4), (h, w));
        Assert.Equal(new byte[]
        {
            17, 17, 17, 17,
            17, 17, 17, 17,
            1, 1, 1, 1,
            1, 1, 10, 1,
        }, labels);
        Assert.Equal(19, CelebAMaskHq.ClassNames.Count);
        Assert.Equal("hair", CelebAMaskHq.ClassNames[17]);
    }

    [LinuxFact(LinuxOnly.Python)]
    public void TheMergeEqualsTheReferencePreparationOnTheSameFiles()
    {
        var root = _dir["tree"];
        SyntheticFaces.Generate(root, 6, seed: 3, maskSize: 48);
        var ids = CelebAMaskHq.ImageIds(root);
        Assert.Equal(Enumerable.Range(0, 6), ids);
        var output = _dir["reference"];
        var printed = Python.Run("celebamask_merge.py", new[] { root, output }.Concat(ids.Select(S)).ToArray());
        Assert.Equal(6, printed.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        var labelsSeen = new HashSet<byte>();
        foreach (var id in ids)
        {
            var expected = File.ReadAllBytes(Path.Combine(output, S(id) + ".bin"));
            var (labels, h, w) = CelebAMaskHq.Merge(root, id);
            Assert.Equal((48, 48), (h, w));
            Assert.Equal(expected, labels);
            labelsSeen.UnionWith(labels);
        }
        // The synthetic faces show the main parts, so the comparison covers overlaps between them.
        foreach (var label in new byte[] { 0, 1, 2, 3, 4, 5, 10, 12, 13, 14, 16, 17 }) Assert.Contains(label, labelsSeen);
    }

    [Fact]
    public void TheDatasetResizesTheImageToItsLabelMap()
    {
        var root = _dir["tree"];
        SyntheticFaces.Generate(root, 3, seed: 1, maskSize: 40);
        var ds = new CelebAMaskHqDataset(root, "train");
        Assert.Equal(3, ds.Count);
        Assert.Contains("train.txt", ds.Summary);   // the synthetic tree writes its split files
        var s = ds.Load(1);
        Assert.Equal(("1", 40, 40), (s.Id, s.Height, s.Width));
        Assert.Equal(40 * 40 * 3, s.Image.Length);
        Assert.All(s.Mask, v => Assert.InRange(v, (byte)0, (byte)18));
        // The image was painted from the labels: skin pixels are skin-coloured (reddish), not background.
        var skin = Enumerable.Range(0, s.Mask.Length).Where(i => s.Mask[i] == 1).ToList();
        Assert.NotEmpty(skin);
        Assert.True(skin.Average(i => s.Image[3 * i] - s.Image[3 * i + 2]) > 40, "skin should be redder than blue");
    }

    [Fact]
    public void SplitsComeFromTheOfficialFilesThenASplitFileThenAllImages()
    {
        var root = _dir["CelebAMask-HQ"];
        foreach (var id in new[] { 0, 1, 2, 3 })
        {
            Image(root, id, 8, 8);
            Part(root, id, "skin", 4, 4, (_, _) => true);
        }
        Assert.Equal(new[] { 0, 1, 2, 3 }, CelebAMaskHq.SplitIds(root, "val").Ids);
        File.WriteAllLines(Path.Combine(root, "val.txt"), new[] { "2", "3.jpg" });
        Assert.Equal(new[] { 2, 3 }, CelebAMaskHq.SplitIds(root, "val").Ids);
        // The official split: faces map to CelebA files, and those files to partitions. Face 3 maps to a test file.
        File.WriteAllLines(Path.Combine(root, CelebAMaskHq.MappingFile), new[]
        {
            "idx         orig_idx    orig_file", "0  119613  119614.jpg", "1  99094  099095.jpg", "2  200121  200122.jpg", "3  81059  081060.jpg",
        });
        File.WriteAllLines(Path.Combine(_dir.Path, CelebAMaskHq.PartitionFile), new[] { "081060.jpg 2", "099095.jpg 0", "119614.jpg 0", "200122.jpg 1" });
        Assert.Equal(new[] { 0, 1 }, CelebAMaskHq.SplitIds(root, "train").Ids);
        Assert.Equal(new[] { 2 }, CelebAMaskHq.SplitIds(root, "val").Ids);
        Assert.Equal(new[] { 3 }, CelebAMaskHq.SplitIds(root, "test").Ids);
        Assert.Equal(new[] { 0, 1, 2 }, CelebAMaskHq.SplitIds(root, "trainval").Ids);
        // The root may also be the folder above the tree.
        Assert.Equal(root, CelebAMaskHq.ResolveRoot(_dir.Path));
    }

    [Fact]
    public void BadFilesAreNamed()
    {
        var root = _dir.Path;
        Directory.CreateDirectory(Path.Combine(root, CelebAMaskHq.ImageFolder));
        Directory.CreateDirectory(Path.Combine(root, CelebAMaskHq.AnnotationFolder));
        var e = Assert.Throws<DataException>(() => CelebAMaskHq.Merge(root, 5));
        Assert.Contains("00005_skin.png", e.Message);
        Assert.Contains("no part mask", e.Message);

        Part(root, 6, "skin", 4, 4, (_, _) => true);
        Part(root, 6, "nose", 5, 4, (_, _) => true);
        e = Assert.Throws<DataException>(() => CelebAMaskHq.Merge(root, 6));
        Assert.Contains("00006_nose.png", e.Message);
        Assert.Contains("4x5", e.Message);

        Part(root, 7, "skin", 4, 4, (_, _) => true);
        File.WriteAllBytes(CelebAMaskHq.PartPath(root, 7, "hair"), new byte[] { 1, 2, 3 });
        e = Assert.Throws<DataException>(() => CelebAMaskHq.Merge(root, 7));
        Assert.Contains("00007_hair.png", e.Message);

        var u = Assert.Throws<UserException>(() => CelebAMaskHq.ResolveRoot(_dir["nowhere"]));
        Assert.Contains("CelebA-HQ-img", u.Message);
    }
}
