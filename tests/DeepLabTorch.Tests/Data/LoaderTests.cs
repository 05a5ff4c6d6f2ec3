using DeepLabTorch.Data;
using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;
using Xunit;

namespace DeepLabTorch.Tests.Data;

[Collection(LiveTensorCountCollection.Name)]
public class LoaderTests
{
    private static readonly Lazy<string> SynthRoot = new(() =>
    {
        var dir = DataTestUtil.TempDir("loader-synth");
        Synthetic.Generate(dir, 14, 3, "voc", 64, 48);
        return dir;
    });

    private static DataOptions Options(int workers) => new()
    {
        Dataset = "pascal", DataRoot = SynthRoot.Value, BaseSize = 48, CropSize = 40, Workers = workers, Seed = 9, GaussianBlur = true,
    };

    internal static DataOptions Opts(int workers) => Options(workers);

    private static List<(float[] Img, long[] Mask, string[] Ids)> Collect(DataOptions o, bool train, int batch, int epoch)
    {
        var ds = Datasets.Open(o, train ? "trainval" : "val");
        using var loader = new DataLoader(ds, o, train, batch);
        var result = new List<(float[], long[], string[])>();
        foreach (var b in loader.Epoch(epoch))
            using (b)
                result.Add((b.Images.ToArray<float>(), b.Masks.ToArray<long>(), b.Ids.ToArray()));
        return result;
    }

    [Fact]
    public void OneAndFourWorkersGiveTheSameBatches()
    {
        var one = Collect(Options(1), true, 3, 2);
        var four = Collect(Options(4), true, 3, 2);
        var inline = Collect(Options(0), true, 3, 2);
        Assert.Equal(4, one.Count); // 14 images, batch 3: last incomplete batch dropped
        Assert.Equal(one.Count, four.Count);
        for (int i = 0; i < one.Count; i++)
        {
            Assert.Equal(one[i].Ids, four[i].Ids);
            Assert.Equal(one[i].Img, four[i].Img);
            Assert.Equal(one[i].Mask, four[i].Mask);
            Assert.Equal(one[i].Mask, inline[i].Mask);
        }
        // Another epoch shuffles differently.
        var other = Collect(Options(2), true, 3, 3);
        Assert.NotEqual(one.SelectMany(b => b.Ids), other.SelectMany(b => b.Ids));
    }

    [Fact]
    public void EvalIsInOrderFullImagesNothingDropped()
    {
        var o = Options(2);
        var ds = Datasets.Open(o, "val");
        var batches = Collect(o, false, 2, 0);
        Assert.Equal(ds.Count, batches.Sum(b => b.Ids.Length));
        Assert.Equal(((FileDataset)ds).Entries.Select(e => e.Id), batches.SelectMany(b => b.Ids));
        Assert.Equal(3 * 48 * 64 * batches[0].Ids.Length, batches[0].Img.Length);
        // The mask is the file's, untouched.
        var first = ds.Load(0);
        Assert.Equal(first.Mask.Select(v => (long)v), batches[0].Mask.Take(48 * 64));
    }

    [Fact]
    public void FewerImagesThanABatchIsAClearError()
    {
        var o = Options(1);
        var ds = Datasets.Open(o, "val");
        var e = Assert.Throws<UserException>(() => new DataLoader(ds, o, true, ds.Count + 1));
        Assert.Contains("fewer than one batch", e.Message);
    }

    [Fact]
    public void CancelStopsWorkersPromptly()
    {
        var o = Options(3) with { Prefetch = 1 };
        var ds = Datasets.Open(o, "trainval");
        using var loader = new DataLoader(ds, o, true, 2);
        using var cts = new CancellationTokenSource();
        int seen = 0;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Assert.ThrowsAny<OperationCanceledException>(() =>
        {
            foreach (var b in loader.Epoch(0, cts.Token))
                using (b)
                {
                    seen++;
                    cts.Cancel();
                }
        });
        Assert.Equal(1, seen);
        Assert.True(sw.Elapsed.TotalSeconds < 20);
        // Breaking out early also stops the workers and the loader stays usable.
        foreach (var b in loader.Epoch(1)) { b.Dispose(); break; }
        Assert.Equal(7, loader.Epoch(2).Select(b => { b.Dispose(); return 1; }).Count());
    }
}

/// <summary>Counts live tensors, so it runs alone (after the parallel tests).</summary>
[CollectionDefinition("data-serial", DisableParallelization = true)]
public class DataSerialCollection { }

[Collection("data-serial")]
public class LoaderTensorTests
{
    [Fact]
    public void TrainBatchesHaveTheContractShapes()
    {
        var o = LoaderTests.Opts(2);
        var ds = Datasets.Open(o, "trainval");
        using var loader = new DataLoader(ds, o, true, 4);
        Assert.Equal(3, loader.BatchesPerEpoch);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long live = torch.Tensor.TotalCount;
        foreach (var b in loader.Epoch(0))
            using (b)
            {
                Assert.Equal(new long[] { 4, 3, 40, 40 }, b.Images.shape);
                Assert.Equal(ScalarType.Float32, b.Images.dtype);
                Assert.Equal(new long[] { 4, 40, 40 }, b.Masks.shape);
                Assert.Equal(ScalarType.Int64, b.Masks.dtype);
                Assert.All(b.Masks.ToArray<long>(), v => Assert.True(v is 0 or 1 or 3 or 7 or 8 or 15 or 255));
            }
        Assert.Equal(live, torch.Tensor.TotalCount);
    }

}
