using DeepLabTorch.Cli.Verbs;
using DeepLabTorch.Config;
using DeepLabTorch.Data;
using DeepLabTorch.Distributed;
using DeepLabTorch.Extensions;
using DeepLabTorch.Models;
using DeepLabTorch.Tests.Data;
using DeepLabTorch.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Distributed;

/// <summary>The parts of data parallelism that need no second process: sharding, buckets, the launcher's reading of the environment, mpirun's command line.</summary>
public sealed class DataParallelPartsTests
{
    private static readonly Lazy<string> SynthRoot = new(() =>
    {
        var dir = DataTestUtil.TempDir("ddp-synth");
        Synthetic.Generate(dir, 17, 4, "voc", 64, 48);
        return dir;
    });

    private static DataOptions Options => new() { Dataset = "pascal", DataRoot = SynthRoot.Value, BaseSize = 48, CropSize = 32, Workers = 2, Seed = 3 };

    private static List<(string[] Ids, float[] Images)> Batches(DataLoader loader, int epoch, int first = 0)
    {
        var list = new List<(string[], float[])>();
        foreach (var b in loader.Epoch(epoch, default, first))
            using (b)
                list.Add((b.Ids.ToArray(), b.Images.ToArray<float>()));
        return list;
    }

    /// <summary>Process k of n takes the k-th run of B samples of each global batch of n·B: together, exactly one process's batches of n·B, in order.</summary>
    [Theory]
    [InlineData(2, 3)]
    [InlineData(3, 2)]
    public void ShardsTogetherAreTheBatchesOfOneProcessWithTheGlobalBatch(int processes, int batch)
    {
        var o = Options;
        var ds = Datasets.Open(o, "trainval");
        using var whole = new DataLoader(ds, o, true, batch * processes);
        var shards = Enumerable.Range(0, processes).Select(k => new DataLoader(ds, o, true, batch, new DataShard(k, processes))).ToList();
        Assert.All(shards, s => Assert.Equal(whole.BatchesPerEpoch, s.BatchesPerEpoch));
        Assert.Equal(17 / (batch * processes), whole.BatchesPerEpoch);
        foreach (var epoch in new[] { 0, 3 })
        {
            var expected = Batches(whole, epoch);
            var parts = shards.Select(s => Batches(s, epoch)).ToList();
            for (var b = 0; b < expected.Count; b++)
            {
                Assert.Equal(expected[b].Ids, parts.SelectMany(p => p[b].Ids));
                Assert.Equal(expected[b].Images, parts.SelectMany(p => p[b].Images));
            }
            // A resumed epoch gives each process the rest of its own batches.
            var rest = Batches(shards[processes - 1], epoch, 1);
            Assert.Equal(parts[processes - 1].Skip(1).Select(p => p.Ids), rest.Select(p => p.Ids));
        }
        foreach (var s in shards) s.Dispose();
    }

    [Fact]
    public void TooFewImagesForOneGlobalBatchIsNamed()
    {
        var o = Options;
        var ds = Datasets.Open(o, "trainval");
        var e = Assert.Throws<UserException>(() => new DataLoader(ds, o, true, 9, new DataShard(0, 2)));
        Assert.Contains("fewer than one global batch of 18 (2 processes × --batch-size 9)", e.Message);
    }

    [Theory]
    [InlineData(17, 2, null)]
    [InlineData(17, 3, null)]
    [InlineData(17, 4, 7)]
    [InlineData(2, 3, null)]
    public void EvaluationBlocksCoverTheSplitOnce(int count, int processes, int? limit)
    {
        var ds = new CountingDataset(count);
        var blocks = Enumerable.Range(0, processes).Select(k => ShardedDataset.Block(ds, k, processes, limit)).ToList();
        var seen = blocks.SelectMany(b => Enumerable.Range(0, b.Count).Select(i => b.Load(i).Id)).ToList();
        Assert.Equal(Enumerable.Range(0, Math.Min(count, limit ?? count)).Select(i => $"s{i}"), seen);
        Assert.True(blocks.Max(b => b.Count) - blocks.Min(b => b.Count) <= 1);
        Assert.Same(ds, ShardedDataset.Block(ds, 0, 1));
    }

    private sealed class CountingDataset(int count) : ISegmentationDataset
    {
        public string Name => "counting";
        public int Count => count;
        public IReadOnlyList<string> ClassNames => new[] { "a", "b" };
        public SegmentationSample Load(int index) => new() { Id = $"s{index}", Height = 1, Width = 1, Image = new byte[3], Mask = new byte[1] };
    }

    /// <summary>Buckets hold whole parameters in reverse order, each under the cap unless one parameter alone is larger; every trainable parameter once.</summary>
    [Fact]
    public void BucketsPackParametersUnderTheCap()
    {
        using var model = new DeepLabV3Plus(new ModelConfig("mobilenet", 16, 3));
        var ps = model.parameters().ToList();
        const long cap = 1 << 20;
        using var buckets = new GradientAverager(ps, ProcessGroup.Single, cap);
        var bytes = buckets.BucketBytes;
        Assert.Equal(ps.Sum(p => p.numel() * 4), buckets.TotalBytes);
        Assert.Equal(ps.Count, buckets.Parameters);
        var largest = ps.Max(p => p.numel() * 4);
        Assert.All(bytes, b => Assert.True(b <= Math.Max(cap, largest), $"a bucket of {b} bytes"));
        Assert.True(bytes.Count > 5, $"{bytes.Count} buckets");
        // Adjacent buckets could not have been merged: each is closed by a parameter that did not fit.
        for (var i = 0; i + 1 < bytes.Count; i++) Assert.True(bytes[i] + bytes[i + 1] > cap || bytes[i] > cap);
        using var one = new GradientAverager(ps, ProcessGroup.Single);
        Assert.Single(one.BucketBytes); // MobileNetV2's 23 MB fit the default 25 MiB
    }

    [Fact]
    public void OnOneProcessAveragingLeavesTheGradientsAsTheyAre()
    {
        using var layer = nn.Linear(3, 2);
        using var x = ones(4, 3);
        layer.forward(x).sum().backward();
        var before = layer.weight!.grad!.clone();
        using var g = new GradientAverager(layer.parameters(), ProcessGroup.Single);
        g.Average();
        Assert.True(before.equal(layer.weight!.grad!).all().item<bool>());
        Assert.Equal(0, g.Calls);
    }

    [Fact]
    public void SyncBatchNormOnOneProcessIsPlainBatchNorm()
    {
        using var model = new DeepLabV3Plus(new ModelConfig("mobilenet", 16, 3));
        var n = SyncBatchNorm.Enable(model, ProcessGroup.Single);
        Assert.Equal(model.modules().OfType<BatchNorm2d>().Count(), n);
        Assert.True(n > 50);
        Assert.All(model.modules().OfType<BatchNorm2d>(), bn => Assert.Null(bn.Sync));
    }

    [Fact]
    public void TheLossOfOneOfSeveralProcessesIsAveragedOverTheGlobalBatch()
    {
        manual_seed(2);
        using var logits = randn(2, 3, 4, 4);
        using var target = randint(0, 3, new long[] { 2, 4, 4 });
        using var alone = Losses.CrossEntropy(logits, target);
        using var oneOfTwo = Losses.CrossEntropy(logits, target, processes: 2);
        Assert.Equal(alone.item<float>() / 2, oneOfTwo.item<float>(), 6);
    }

    [Fact]
    public void TheDefaultLrFollowsTheGlobalBatch()
    {
        var c = new TrainConfig { Dataset = "synthetic", BatchSize = 4 };
        Assert.Equal(0.007, TrainConfigRules.Resolve(c).Lr!.Value, 12);
        Assert.Equal(0.014, TrainConfigRules.Resolve(c, 2).Lr!.Value, 12);
        Assert.Equal(0.001, TrainConfigRules.Resolve(c with { Lr = 0.001 }, 2).Lr!.Value, 12);
    }

    private static Func<string, string?> Env(params (string Key, string Value)[] vars) =>
        key => vars.FirstOrDefault(v => v.Key == key).Value;

    [Fact]
    public void TheLauncherIsReadFromTheEnvironment()
    {
        Assert.False(Launcher.UnderMpi(Env()));
        Assert.True(Launcher.UnderMpi(Env(("OMPI_COMM_WORLD_SIZE", "4"))));
        Assert.True(Launcher.UnderMpi(Env(("PMIX_RANK", "0"))));
        Assert.Equal(4, Launcher.AnnouncedSize(Env(("OMPI_COMM_WORLD_SIZE", "4"))));
        Assert.Equal(8, Launcher.AnnouncedSize(Env(("PMIX_RANK", "3"), ("SLURM_STEP_NUM_TASKS", "8"))));
        Assert.Null(Launcher.AnnouncedSize(Env(("PMIX_RANK", "3"))));
        // srun with several tasks but no PMIx: each would train alone into the same folder.
        var why = Launcher.SrunWithoutMpi(Env(("SLURM_PROCID", "1"), ("SLURM_STEP_NUM_TASKS", "4")));
        Assert.Contains("srun --mpi=pmix", why);
        Assert.Null(Launcher.SrunWithoutMpi(Env(("SLURM_PROCID", "0"), ("SLURM_STEP_NUM_TASKS", "1"))));
        Assert.Null(Launcher.SrunWithoutMpi(Env(("SLURM_PROCID", "1"), ("SLURM_STEP_NUM_TASKS", "4"), ("PMIX_RANK", "1"))));
    }

    [Fact]
    public void NprocRunsThisCommandUnderMpirun()
    {
        var args = MpiLaunch.WithoutNproc(new[] { "train", "--nproc", "2", "--lr", "0.1", "--nproc=3", "--sync-bn" });
        Assert.Equal(new[] { "train", "--lr", "0.1", "--sync-bn" }, args);
        var asRoot = MpiLaunch.Command(2, args, asRoot: true);
        Assert.Equal(new[] { "-np", "2", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none" }, asRoot.Take(6));
        Assert.Equal(args, asRoot.TakeLast(4));
        Assert.DoesNotContain("--allow-run-as-root", MpiLaunch.Command(2, args, asRoot: false));
    }

    [Fact]
    public void NprocBelowOneIsRefused()
    {
        var err = new StringWriter();
        var code = DeepLabTorch.Cli.Program.Run(new[] { "train", "--dataset", "synthetic", "--nproc", "0" }, new StringWriter(), err);
        Assert.Equal(2, code);
        Assert.Contains("--nproc must be >= 1, got 0", err.ToString());
    }
}
