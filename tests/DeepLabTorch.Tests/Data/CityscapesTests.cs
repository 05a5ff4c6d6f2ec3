using DeepLabTorch.Data;
using Xunit;

namespace DeepLabTorch.Tests.Data;

/// <summary>Cityscapes' layout and its label ids → train ids, in both label layouts, with bad ids named.</summary>
public sealed class CityscapesTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static void Pair(string root, string labelRoot, string split, string city, string stem, byte[] ids, int h, int w)
    {
        ImageCodec.WritePng(Path.Combine(root, "leftImg8bit", split, city, stem + "_leftImg8bit.png"), Enumerable.Repeat((byte)77, h * w * 3).ToArray(), h, w);
        ImageCodec.WriteGrayPng(Path.Combine(root, labelRoot, split, city, stem + "_gtFine_labelIds.png"), ids, h, w);
    }

    [Theory]
    [InlineData("gtFine")]
    [InlineData("gtFine_trainvaltest/gtFine")]
    public void LabelIdsBecomeTrainIdsAndVoidBecomes255(string labelRoot)
    {
        var root = _dir.Path;
        // By hand: road 7 → 0, sidewalk 8 → 1, car 26 → 13, bicycle 33 → 18; unlabeled 0, parking 9, caravan 29 → 255.
        Pair(root, labelRoot, "train", "aachen", "aachen_000000_000019", new byte[] { 7, 8, 26, 33, 0, 9, 29, 24 }, 2, 4);
        Pair(root, labelRoot, "train", "bremen", "bremen_000001_000019", new byte[] { 7, 7, 7, 7, 7, 7, 7, 7 }, 2, 4);
        Pair(root, labelRoot, "val", "lindau", "lindau_000000_000019", new byte[] { 23, 23, 23, 23, 23, 23, 23, 23 }, 2, 4);
        var train = new CityscapesDataset(root, "train");
        Assert.Equal(2, train.Count);
        Assert.Equal(19, train.ClassNames.Count);
        Assert.Equal("bicycle", train.ClassNames[18]);
        var s = train.Load(0);
        Assert.Equal("aachen_000000_000019", s.Id);
        Assert.Equal(new byte[] { 0, 1, 13, 18, 255, 255, 255, 11 }, s.Mask);
        Assert.Equal(new byte[] { 10, 10, 10, 10, 10, 10, 10, 10 }, new CityscapesDataset(root, "val").Load(0).Mask);   // sky
        var opened = Datasets.Open(new DataOptions { Dataset = "cityscapes", DataRoot = root }, "train");
        Assert.Equal("cityscapes/train", opened.Name);

        // data check --json: the decoded class counts, by hand from the two masks above (train split only).
        var r = DeepLabTorch.Tests.Cli.CliRunner.Run(root, "data", "check", "--dataset", "cityscapes", "--data-root", root, "--split", "train", "--json");
        Assert.True(r.Code == 0, r.Stdout + r.Stderr);
        var json = System.Text.Json.JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(2, json.GetProperty("images").GetInt32());
        var pixels = json.GetProperty("class_pixels").EnumerateArray().Select(v => v.GetInt64()).ToArray();
        Assert.Equal(19, pixels.Length);
        Assert.Equal(1 + 8, pixels[0]);    // road: one in aachen, eight in bremen
        Assert.Equal(1, pixels[13]);       // car
        Assert.Equal(1, pixels[11]);       // person
        Assert.Equal(3, json.GetProperty("ignored_pixels").GetInt64());
    }

    [Fact]
    public void AnIdOutsideTheRangeAndAMissingLabelFileAreNamed()
    {
        var root = _dir.Path;
        Pair(root, "gtFine", "train", "ulm", "ulm_000000_000019", new byte[] { 7, 40, 7, 7 }, 2, 2);
        ImageCodec.WritePng(Path.Combine(root, "leftImg8bit", "train", "ulm", "ulm_000001_000019_leftImg8bit.png"), new byte[2 * 2 * 3], 2, 2);
        var set = new CityscapesDataset(root, "train");
        var e = Assert.Throws<DataException>(() => set.Load(0));
        Assert.Contains("ulm_000000_000019_gtFine_labelIds.png", e.Message);
        Assert.Contains("label id 40 at (x=1, y=0) is outside Cityscapes' 0-33", e.Message);
        e = Assert.Throws<DataException>(() => set.Load(1));
        Assert.Contains("ulm_000001_000019_gtFine_labelIds.png", e.Message);
        var u = Assert.Throws<UserException>(() => new CityscapesDataset(Path.Combine(root, "nowhere"), "train"));
        Assert.Contains("leftImg8bit/train", u.Message);
    }
}
