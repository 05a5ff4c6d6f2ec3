using System.Text.Json;
using DeepLabTorch.Data;
using Xunit;

namespace DeepLabTorch.Tests.Data;

/// <summary>
/// COCO's masks as the reference builds them (pycocotools' runs and polygon rasteriser, CAT_LIST, first instance wins,
/// more than 1000 labelled pixels), the streaming reader, the mask cache, and bad input named.
/// Every expected mask and count here was worked out by hand from pycocotools' rules; see the comments.
/// </summary>
public sealed class CocoTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    // ------------------------------------------------------------------ runs and polygons

    [Fact]
    public void CompressedStringsDecodeByHand()
    {
        // '3' = 3, '2' = 2, '4' = 4 (one 5-bit group each, no delta for the first three counts).
        Assert.Equal(new uint[] { 3, 2, 4 }, CocoRle.FromString("324"));
        // 100 = 4 + 3·32: '4'+0x20 → 'T', then '3'.
        Assert.Equal(new uint[] { 100 }, CocoRle.FromString("T3"));
        // The fourth count is stored as the difference from the second: 1 - 3 = -2 → 30 with the sign bit → 'N'.
        Assert.Equal(new uint[] { 5, 3, 7, 1 }, CocoRle.FromString("537N"));
        // 1520 = 16 + 15·32 + 1·1024 → '`' '_' '1'; 40 = 8 + 1·32 → 'X' '1'.
        Assert.Equal(new uint[] { 1520, 40, 40 }, CocoRle.FromString("`_1X1X1"));
        Assert.Throws<FormatException>(() => CocoRle.FromString("3~"));   // '~' is outside 48-111
        Assert.Throws<FormatException>(() => CocoRle.FromString("T"));    // continuation bit set, then the end
    }

    /// <summary>Row-major 0/1 mask of runs on h×w, painted with label 1.</summary>
    private static byte[] Paint(uint[] runs, int h, int w)
    {
        var mask = new byte[h * w];
        Assert.True(CocoRle.PaintFirstWins(runs, mask, h, w, 1));
        return mask;
    }

    private static byte[] Pixels(int h, int w, params (int X, int Y)[] set)
    {
        var mask = new byte[h * w];
        foreach (var (x, y) in set) mask[y * w + x] = 1;
        return mask;
    }

    [Fact]
    public void RunsAreColumnMajor()
    {
        // h=3, w=4: runs 2 off, 3 on → indices 2, 3, 4 → (x=0,y=2), (x=1,y=0), (x=1,y=1).
        Assert.Equal(Pixels(3, 4, (0, 2), (1, 0), (1, 1)), Paint(new uint[] { 2, 3, 7 }, 3, 4));
        Assert.False(CocoRle.PaintFirstWins(new uint[] { 2, 3, 6 }, new byte[12], 3, 4, 1));   // 11 pixels, not 12
    }

    [Fact]
    public void ASquarePolygonCoversThePixelsWhoseCentresAreInside()
    {
        // By hand through pycocotools' steps: ×5 → (5,5),(15,5),(15,15),(5,15); the column crossings are at
        // x = 1, 2 (y from 5.5/5 - .5 → ceil 1) and x = 1, 2 (y from 15.5/5 - .5 → ceil 3); with h = 5 the switch
        // points are 6, 8, 11, 13 and 25 → runs 6, 2, 3, 2, 12: the pixels x, y ∈ {1, 2}.
        var runs = CocoRle.FromPolygon(new double[] { 1, 1, 3, 1, 3, 3, 1, 3 }, 5, 5);
        Assert.Equal(new uint[] { 6, 2, 3, 2, 12 }, runs);
        Assert.Equal(Pixels(5, 5, (1, 1), (2, 1), (1, 2), (2, 2)), Paint(runs, 5, 5));
    }

    [Fact]
    public void ATrianglePolygonMatchesTheHandWalk()
    {
        // (0,0),(4,0),(0,4) on 5×5. ×5 → the hypotenuse walked from (0,20) to (20,0) with slope -1; the crossings are
        // (0..3, 0) along the top and (3,0),(2,1),(1,2),(0,3) along the hypotenuse; (3,0) twice, so its zero-length
        // run joins the next: runs 0, 3, 2, 2, 3, 1, 14. The pixels: x + y ≤ 2.
        var runs = CocoRle.FromPolygon(new double[] { 0, 0, 4, 0, 0, 4 }, 5, 5);
        Assert.Equal(new uint[] { 0, 3, 2, 2, 3, 1, 14 }, runs);
        Assert.Equal(Pixels(5, 5, (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 0)), Paint(runs, 5, 5));
    }

    [Fact]
    public void TheFirstInstanceWins()
    {
        var mask = new byte[5 * 5];
        Assert.True(CocoRle.PaintFirstWins(CocoRle.FromPolygon(new double[] { 1, 1, 3, 1, 3, 3, 1, 3 }, 5, 5), mask, 5, 5, 7));
        Assert.True(CocoRle.PaintFirstWins(CocoRle.FromPolygon(new double[] { 0, 0, 4, 0, 0, 4 }, 5, 5), mask, 5, 5, 9));
        // The square's (1,1) stays 7; the triangle's other five pixels become 9.
        Assert.Equal(7, mask[1 * 5 + 1]);
        Assert.Equal(9, mask[0]);
        Assert.Equal(4, mask.Count(v => v == 7));
        Assert.Equal(5, mask.Count(v => v == 9));
    }

    // ------------------------------------------------------------------ a small tree

    /// <summary>Segmentations as JSON text.</summary>
    private static string Rect(int x0, int y0, int x1, int y1) => $"[[{x0},{y0},{x1},{y0},{x1},{y1},{x0},{y1}]]";

    private static string Ann(long id, long image, int category, string segmentation, int crowd = 0) =>
        $"{{\"segmentation\": {segmentation}, \"area\": 1.0, \"iscrowd\": {crowd}, \"image_id\": {image}, \"bbox\": [0, 0, 1, 1], \"category_id\": {category}, \"id\": {id}}}";

    private static string Img(long id, string file, int h = 40, int w = 40) =>
        $"{{\"license\": 1, \"file_name\": \"{file}\", \"coco_url\": \"x\", \"height\": {h}, \"width\": {w}, \"date_captured\": \"2013-11-14 {{}}\", \"id\": {id}}}";

    /// <summary>
    /// Four 40×40 images. Image 1: person rect x 0-19, dog x 10-29 (x 10-19 stay person), a toothbrush (not VOC),
    /// a crowd car as uncompressed runs on column 39, a bus as a compressed string on column 38 → 1280 labelled,
    /// kept. Image 2: a 10×10 cat (100 pixels), dropped. Image 3: nothing, dropped. Image 4: a person of two polygons
    /// (rows 0-29) and a horse on rows 25-39 (rows 25-29 stay person) → kept. The annotations come before the images
    /// and image 4's before image 1's.
    /// </summary>
    private string Tree(string split = "train", string? annotations = null)
    {
        var root = _dir.Path;
        annotations ??= string.Join(",\n", new[]
        {
            Ann(40, 4, 1, "[[0,0,40,0,40,20,0,20],[0,20,40,20,40,30,0,30]]"),
            Ann(41, 4, 19, Rect(0, 25, 40, 40)),
            Ann(10, 1, 1, Rect(0, 0, 20, 40)),
            Ann(11, 1, 18, Rect(10, 0, 30, 40)),
            Ann(12, 1, 90, Rect(30, 0, 40, 40)),
            Ann(13, 1, 3, "{\"counts\": [1560, 40], \"size\": [40, 40]}", 1),
            Ann(14, 1, 6, "{\"size\": [40, 40], \"counts\": \"`_1X1X1\"}", 1),
            Ann(20, 2, 17, Rect(0, 0, 10, 10)),
        });
        var json = "{\"info\": {\"description\": \"a [tree] {with} \\\"quotes\\\"\"}, \"licenses\": [{\"id\": 1, \"name\": \"x\"}],\n" +
                   $"\"annotations\": [\n{annotations}\n],\n" +
                   $"\"images\": [{Img(1, "000000000001.jpg")}, {Img(2, "000000000002.jpg")}, {Img(3, "000000000003.jpg")}, {Img(4, "000000000004.jpg")}],\n" +
                   "\"categories\": [{\"supercategory\": \"person\", \"id\": 1, \"name\": \"person\"}]}";
        Directory.CreateDirectory(Path.Combine(root, "annotations"));
        File.WriteAllText(Coco.AnnotationFile(root, split), json);
        foreach (var id in new[] { 1, 2, 3, 4 })
            ImageCodec.WriteJpeg(Path.Combine(Coco.ImageFolder(root, split), $"00000000000{id}.jpg"), Enumerable.Repeat((byte)(40 * id), 40 * 40 * 3).ToArray(), 40, 40);
        return root;
    }

    [Fact]
    public void TheTreeDecodesToTheHandCountsAndKeepsTheReferencesImages()
    {
        var root = Tree();
        var log = new CapturingLoggers();
        var set = new CocoDataset(root, "train", log.CreateLogger("t"));
        Assert.Equal(2, set.Count);
        Assert.Equal(new long[] { 1, 4 }, new[] { set.ImageId(0), set.ImageId(1) });
        Assert.Equal(21, set.ClassNames.Count);
        var one = set.Load(0);
        Assert.Equal("000000000001", one.Id);
        byte At(int x, int y) => one.Mask[y * 40 + x];
        Assert.Equal(15, At(0, 0));    // person
        Assert.Equal(15, At(15, 39));  // person over dog
        Assert.Equal(12, At(25, 7));   // dog
        Assert.Equal(0, At(33, 3));    // the toothbrush is background
        Assert.Equal(6, At(38, 20));   // bus, from the string
        Assert.Equal(7, At(39, 0));    // car, from the runs
        var four = set.Load(1).Mask;
        Assert.Equal(1200, four.Count(v => v == 15));
        Assert.Equal(400, four.Count(v => v == 13));

        var r = DeepLabTorch.Tests.Cli.CliRunner.Run(root, "data", "check", "--dataset", "coco", "--data-root", root, "--split", "train", "--json");
        Assert.True(r.Code == 0, r.Stdout + r.Stderr);
        var json = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(2, json.GetProperty("images").GetInt32());
        var pixels = json.GetProperty("class_pixels").EnumerateArray().Select(v => v.GetInt64()).ToArray();
        var expected = new long[21];
        expected[0] = 320;            // image 1, x 30-37
        expected[15] = 800 + 1200;    // person
        expected[12] = 400;           // dog, x 20-29
        expected[6] = 40;             // bus
        expected[7] = 40;             // car
        expected[13] = 400;           // horse, rows 30-39
        Assert.Equal(expected, pixels);
        Assert.Equal(0, json.GetProperty("ignored_pixels").GetInt64());
    }

    [Fact]
    public void TheMasksAreCachedAndRemadeWhenTheAnnotationsChange()
    {
        var root = Tree();
        _ = new CocoDataset(root, "train");
        var cache = Path.Combine(root, "annotations", "deeplabtorch-masks", "train2017");
        Assert.True(File.Exists(Path.Combine(cache, "index.tsv")));
        Assert.Equal(2, Directory.GetFiles(Path.Combine(cache, "masks")).Length);

        var log = new CapturingLoggers();
        Assert.Equal(2, new CocoDataset(root, "train", log.CreateLogger("t")).Count);
        Assert.Contains(log.Lines, l => l.Contains("from " + cache));
        Assert.DoesNotContain(log.Lines, l => l.Contains("reading"));

        // Image 2's cat grows to 40×30 = 1200 pixels: the file changes, and image 2 is kept.
        Tree(annotations: string.Join(",", Ann(10, 1, 1, Rect(0, 0, 40, 40)), Ann(20, 2, 17, Rect(0, 0, 40, 30))));
        log = new CapturingLoggers();
        var set = new CocoDataset(root, "train", log.CreateLogger("t"));
        Assert.Contains(log.Lines, l => l.Contains("reading"));
        Assert.Equal(new long[] { 1, 2 }, new[] { set.ImageId(0), set.ImageId(1) });
        Assert.Equal(1200, set.Load(1).Mask.Count(v => v == 8));   // cat
    }

    [Fact]
    public void StreamingInTinyChunksReadsTheSame()
    {
        var root = Tree();
        var path = Coco.AnnotationFile(root, "train");
        var whole = CocoAnnotations.Read(path, Coco.LabelOf);
        var chunked = CocoAnnotations.Read(path, Coco.LabelOf, initialBuffer: 16);
        Assert.Equal(whole.Images, chunked.Images);
        Assert.Equal(4, whole.Images.Count);
        Assert.Equal(1, whole.InstancesSkipped);   // the toothbrush
        Assert.Equal(whole.InstancesByImage.Keys.Order(), chunked.InstancesByImage.Keys.Order());
        foreach (var (image, list) in whole.InstancesByImage)
        {
            var other = chunked.InstancesByImage[image];
            Assert.Equal(list.Select(i => (i.Id, i.Label, i.Shapes.Length)), other.Select(i => (i.Id, i.Label, i.Shapes.Length)));
            var cocoImage = whole.Images.Single(i => i.Id == image);
            Assert.Equal(Coco.RenderMask(cocoImage, list), Coco.RenderMask(cocoImage, other));
        }
        Assert.Equal(new long[] { 10, 11, 13, 14 }, whole.InstancesByImage[1].Select(i => i.Id));
    }

    // ------------------------------------------------------------------ bad input

    [Fact]
    public void BrokenJsonIsNamed()
    {
        var root = Tree();
        var path = Coco.AnnotationFile(root, "train");
        var text = File.ReadAllText(path);
        File.WriteAllText(path, text[..(text.Length / 2)]);
        var e = Assert.Throws<DataException>(() => new CocoDataset(root, "train"));
        Assert.Contains("instances_train2017.json", e.Message);
        Assert.Contains("not a valid COCO annotation file", e.Message);
        File.WriteAllText(path, "[1, 2]");
        e = Assert.Throws<DataException>(() => new CocoDataset(root, "train"));
        Assert.Contains("top level must be one object", e.Message);
    }

    [Theory]
    [InlineData("[[1,1,5,5]]", "annotation 77: polygon 0 has 4 numbers; a polygon needs at least 3 (x, y) points")]
    [InlineData("{\"counts\": [100], \"size\": [10, 10]}", "annotation 77: its RLE is 10x10 (WxH) but image 1 (000000000001.jpg) is 40x40")]
    [InlineData("{\"counts\": [100, 10], \"size\": [40, 40]}", "annotation 77: its RLE counts add up to 110 pixels, not the 1600 of image 1")]
    [InlineData("{\"counts\": \"3~\", \"size\": [40, 40]}", "annotation 77: its RLE string is broken")]
    [InlineData("\"a string\"", "annotation 77: segmentation is neither polygons nor RLE")]
    public void BadSegmentationsAreNamed(string segmentation, string message)
    {
        var root = Tree(annotations: Ann(77, 1, 1, segmentation));
        var e = Assert.Throws<DataException>(() => new CocoDataset(root, "train"));
        Assert.Contains("instances_train2017.json", e.Message);
        Assert.Contains(message, e.Message);
        Assert.False(Directory.Exists(Path.Combine(root, "annotations", "deeplabtorch-masks", "train2017")));
    }

    [Fact]
    public void MissingFilesAndAWrongImageSizeAreNamed()
    {
        var u = Assert.Throws<UserException>(() => new CocoDataset(_dir.Path, "val"));
        Assert.Contains("instances_val2017.json", u.Message);
        u = Assert.Throws<UserException>(() => new CocoDataset(_dir.Path, "trainval"));
        Assert.Contains("expected train or val", u.Message);

        var root = Tree();
        var image = Path.Combine(Coco.ImageFolder(root, "train"), "000000000004.jpg");
        ImageCodec.WriteJpeg(image, new byte[30 * 40 * 3], 30, 40);
        var set = new CocoDataset(root, "train");
        var e = Assert.Throws<DataException>(() => set.Load(1));
        Assert.Contains("000000000004.jpg", e.Message);
        Assert.Contains("is 40x30 (WxH) but its annotations say 40x40", e.Message);
        File.Delete(image);
        e = Assert.Throws<DataException>(() => set.Load(1));
        Assert.Contains("000000000004.jpg", e.Message);
    }

    [Fact]
    public void TrainAcceptsCocoWithTheReferencesDefaults()
    {
        var c = DeepLabTorch.Config.TrainConfigRules.Resolve(new DeepLabTorch.Config.TrainConfig { Dataset = "coco", DataRoot = "x", BatchSize = 4 });
        Assert.Equal(30, c.Epochs);      // the reference's train.py: coco 30 epochs, lr 0.1 at batch 4
        Assert.Equal(0.1, c.Lr);
        Assert.Equal("auto", c.PretrainedBackbone);
    }
}
