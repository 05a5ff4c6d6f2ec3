using DeepLabTorch.Checkpoints;
using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Checkpoints;

[Collection(CheckpointSerialCollection.Name)]
public class CheckpointStoreTests
{
    private static void TrainSteps(TinyNet net, optim.Optimizer opt, int steps, long seed)
    {
        // BatchNorm stays in eval mode: the binding's training-mode BatchNorm2d fails on
        // num_batches_tracked.add_(1) (int64 tensor + double scalar), reported to the lead.
        net.eval();
        using var scope = NewDisposeScope();
        var g = tensor(new[] { 0.1f * seed });
        for (int i = 0; i < steps; i++)
        {
            opt.zero_grad();
            var x = (randn(2, 3, 5, 5) + g);
            var loss = net.forward(x).square().mean();
            loss.backward();
            opt.step();
        }
    }

    private static void AssertSameState(nn.Module a, nn.Module b)
    {
        var sa = a.StateDictInOrder();
        var sb = b.StateDictInOrder();
        Assert.Equal(sa.Keys, sb.Keys);
        foreach (var (k, t) in sa) Assert.True(t.Equals(sb[k]), $"{k} differs");
    }

    [Theory]
    [InlineData("sgd")]
    [InlineData("adam")]
    public void ModelOptimizerAndRngRoundTripExactly(string kind)
    {
        using var dir = new TempDir();
        manual_seed(1);
        using var net = new TinyNet();
        using optim.Optimizer opt = kind == "sgd" ? optim.SGD(net.parameters(), 0.05, momentum: 0.9, weight_decay: 1e-4) : optim.Adam(net.parameters(), 0.01);
        TrainSteps(net, opt, 3, 1);
        opt.ParamGroups.First().LearningRate = 0.0123;

        var info = new CheckpointInfo
        {
            Model = new CheckpointModel("mobilenet", 16, 5, new[] { "a", "b", "c", "d", "e" }),
            TrainingConfigJson = "{\"lr\":0.05}",
            Epoch = 4,
            Iteration = 321,
            BestMIoU = 0.625,
            Scheduler = new Dictionary<string, double> { ["step"] = 321, ["total_steps"] = 1000 },
            Rng = new CheckpointRng { DataSeed = 7, AugmentationSeed = 8, Extra = new Dictionary<string, long> { ["sampler"] = 9 } },
        };
        var path = CheckpointFiles.Last(dir.Path);
        CheckpointStore.Save(path, net, opt, info);

        // What the run does next, straight on.
        using var expectedDraw = rand(4);
        TrainSteps(net, opt, 2, 2);

        manual_seed(999); // scramble the generator: Load must restore it
        using var net2 = new TinyNet();
        using optim.Optimizer opt2 = kind == "sgd" ? optim.SGD(net2.parameters(), 0.05, momentum: 0.9, weight_decay: 1e-4) : optim.Adam(net2.parameters(), 0.01);
        var back = CheckpointStore.Load(path, net2, opt2);
        using var resumedDraw = rand(4);
        Assert.True(expectedDraw.Equals(resumedDraw), "the torch RNG state was not restored");
        Assert.Equal(0.0123, opt2.ParamGroups.First().LearningRate);
        TrainSteps(net2, opt2, 2, 2);
        AssertSameState(net, net2); // bitwise: same weights after resuming mid-run

        Assert.Equal(4, back.Epoch);
        Assert.Equal(321, back.Iteration);
        Assert.Equal(0.625, back.BestMIoU);
        Assert.Equal(new CheckpointModel("mobilenet", 16, 5, null), back.Model! with { ClassNames = null });
        Assert.Equal(new[] { "a", "b", "c", "d", "e" }, back.Model!.ClassNames);
        Assert.Equal("{\"lr\":0.05}", back.TrainingConfigJson);
        Assert.Equal(1000, back.Scheduler!["total_steps"]);
        Assert.Equal(7, back.Rng!.DataSeed);
        Assert.Equal(8, back.Rng.AugmentationSeed);
        Assert.Equal(9, back.Rng.Extra!["sampler"]);
        Assert.NotNull(back.Rng.Torch);
        Assert.Equal(CheckpointInfo.CurrentFormatVersion, back.FormatVersion);
    }

    [Fact]
    public void CheckpointIsAPlainSafetensorsFileWithTheExpectedLayout()
    {
        using var dir = new TempDir();
        using var net = new TinyNet();
        using var opt = optim.SGD(net.parameters(), 0.1, momentum: 0.9);
        TrainSteps(net, opt, 1, 1);
        var path = dir["c.safetensors"];
        CheckpointStore.Save(path, net, opt, new CheckpointInfo { Epoch = 2, BestMIoU = double.NaN });
        using var f = Safetensors.Read(path);
        Assert.Contains("backbone.0.weight", f.Tensors.Keys);
        Assert.Contains("backbone.1.num_batches_tracked", f.Tensors.Keys);
        Assert.Contains("optimizer.state.0.momentum_buffer", f.Tensors.Keys);
        Assert.Contains("rng.torch", f.Tensors.Keys);
        Assert.Equal("1", f.Metadata["format_version"]);
        Assert.Contains("\"epoch\":2", f.Metadata["deeplabtorch"]);
        Assert.True(double.IsNaN(CheckpointStore.ReadInfo(path)!.BestMIoU));
    }

    [Fact]
    public void LoadingIntoADifferentModelNamesTheProblem()
    {
        using var dir = new TempDir();
        using var net = new TinyNet(5);
        var path = dir["d.safetensors"];
        CheckpointStore.Save(path, net, null, new CheckpointInfo());
        using var other = new TinyNet(3);
        var e = Assert.Throws<CheckpointException>(() => CheckpointStore.Load(path, other, null, restoreRng: false));
        Assert.Contains("classifier.weight", e.Message);
        Assert.Contains("[5, 4, 1, 1]", e.Message);
    }

    [Fact]
    public void PlainSafetensorsIsNotACheckpointAndNewerFormatsAreRefused()
    {
        using var dir = new TempDir();
        using var net = new TinyNet();
        var plain = dir["plain.safetensors"];
        Safetensors.Write(plain, net.StateDictInOrder(), null);
        var e = Assert.Throws<CheckpointException>(() => CheckpointStore.Load(plain, net, null));
        Assert.Contains("not a DeepLabTorch checkpoint", e.Message);

        var future = dir["future.safetensors"];
        Safetensors.Write(future, net.StateDictInOrder(), new Dictionary<string, string> { ["format_version"] = "2", ["deeplabtorch"] = "{\"format_version\":2}" });
        e = Assert.Throws<CheckpointException>(() => CheckpointStore.Load(future, net, null));
        Assert.Contains("format version", e.Message);
    }

    [Fact]
    public void PeriodicFilesArePrunedToKeepN()
    {
        using var dir = new TempDir();
        foreach (var ep in new[] { 1, 2, 3, 10, 11 }) File.WriteAllText(CheckpointFiles.Periodic(dir.Path, ep), "x");
        File.WriteAllText(CheckpointFiles.Last(dir.Path), "x");
        File.WriteAllText(CheckpointFiles.Best(dir.Path), "x");
        Assert.EndsWith("epoch-0010.safetensors", CheckpointFiles.Periodic(dir.Path, 10));
        var deleted = CheckpointFiles.Prune(dir.Path, 2);
        Assert.Equal(3, deleted.Count);
        Assert.Equal(new[] { 10, 11 }, CheckpointFiles.ListPeriodic(dir.Path).Select(x => x.Epoch));
        Assert.True(File.Exists(CheckpointFiles.Last(dir.Path)));
        Assert.True(File.Exists(CheckpointFiles.Best(dir.Path)));
        Assert.Throws<UserException>(() => CheckpointFiles.Prune(dir.Path, -1));
    }
}

/// <summary>
/// Tests that read the global torch RNG or the live-tensor count run without parallel neighbours.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class CheckpointSerialCollection
{
    public const string Name = "checkpoint tests that need the process to themselves";
}
