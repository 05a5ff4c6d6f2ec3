using DeepLabTorch.Checkpoints;
using DeepLabTorch.Extensions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Checkpoints;

/// <summary>The one state-dict loader against hand-made state dicts for TinyNet (conv, BatchNorm, 1×1 classifier).</summary>
public class StateDictLoaderTests
{
    private const string File = "/weights/hand.safetensors";
    private static readonly StateDictKeys Keys = new(new Dictionary<string, string> { ["low.weight"] = "backbone.0.weight" }, "classifier", "TinyNet");

    /// <summary>Every value written out by hand (or a simple ramp), so a test can say what each tensor must hold.</summary>
    private static Dictionary<string, Tensor> HandMade(int classes = 5) => new(StringComparer.Ordinal)
    {
        ["backbone.0.weight"] = arange(108, dtype: ScalarType.Float32).div_(100.0.ToScalar()).reshape(4, 3, 3, 3),
        ["backbone.1.weight"] = tensor(new float[] { 1, 2, 3, 4 }),
        ["backbone.1.bias"] = tensor(new float[] { -1, -2, -3, -4 }),
        ["backbone.1.running_mean"] = tensor(new float[] { 0.25f, 0.5f, 0.75f, 1 }),
        ["backbone.1.running_var"] = tensor(new float[] { 2, 3, 4, 5 }),
        ["backbone.1.num_batches_tracked"] = tensor(42L),
        ["classifier.weight"] = full(new long[] { classes, 4, 1, 1 }, 0.5f.ToScalar()),
        ["classifier.bias"] = arange(classes, dtype: ScalarType.Float32),
    };

    private static Dictionary<string, Tensor> Snapshot(nn.Module m) => m.StateDictInOrder().ToDictionary(kv => kv.Key, kv => kv.Value.clone());

    private static void AssertUnchanged(Dictionary<string, Tensor> before, nn.Module m)
    {
        foreach (var (k, t) in m.StateDictInOrder()) Assert.True(before[k].Equals(t), $"{k} was copied although the load failed");
    }

    private static StateDictLoadOptions Options(CapturingLoggers? log = null, ClassifierRule rule = ClassifierRule.MustFit, bool partial = false) =>
        new() { Keys = Keys, Classifier = rule, Partial = partial, Logger = log };

    [Fact]
    public void LoadsEveryTensorRunningStatisticsAndCounterIncluded()
    {
        using var scope = NewDisposeScope();
        using var net = new TinyNet(5);
        var sd = HandMade();
        var report = StateDictLoader.Load(net, sd, File, Options());
        Assert.Equal(8, report.Loaded.Count);
        Assert.Equal(new float[] { 2, 3, 4, 5 }, net.StateDictInOrder()["backbone.1.running_var"].data<float>().ToArray());
        Assert.Equal(new float[] { 0.25f, 0.5f, 0.75f, 1 }, net.StateDictInOrder()["backbone.1.running_mean"].data<float>().ToArray());
        Assert.Equal(42L, net.StateDictInOrder()["backbone.1.num_batches_tracked"].item<long>());
        Assert.Equal(1.07f, net.StateDictInOrder()["backbone.0.weight"][3, 2, 2, 2].item<float>(), 6);
        Assert.Equal(new float[] { 0, 1, 2, 3, 4 }, net.classifier.bias!.data<float>().ToArray());
    }

    [Fact]
    public void AnAliasKeyLoadsUnderOurName()
    {
        using var scope = NewDisposeScope();
        using var net = new TinyNet(5);
        var sd = HandMade();
        sd.Remove("backbone.0.weight", out var conv);
        sd["low.weight"] = conv!;
        var report = StateDictLoader.Load(net, sd, File, Options());
        Assert.Contains("backbone.0.weight", report.Loaded);
        Assert.True(net.StateDictInOrder()["backbone.0.weight"].Equals(conv!));

        // Both names present (one tensor in the reference), but of different shapes: the file is inconsistent.
        sd["backbone.0.weight"] = zeros(4, 3, 1, 1);
        sd["backbone.1.running_var"] = full(4, 9f.ToScalar());
        var before = Snapshot(net);
        var e = Assert.Throws<CheckpointException>(() => StateDictLoader.Load(net, sd, File, Options()));
        AssertUnchanged(before, net);
        Assert.Contains("alias low.weight [4, 3, 3, 3] vs backbone.0.weight [4, 3, 1, 1]", e.Message);
        Assert.StartsWith(File, e.Message);
    }

    [Fact]
    public void AMissingNumBatchesTrackedIsToleratedAndSetToZero()
    {
        using var scope = NewDisposeScope();
        using var net = new TinyNet(5);
        using (no_grad()) net.StateDictInOrder()["backbone.1.num_batches_tracked"].fill_(7L.ToScalar());
        var sd = HandMade();
        sd.Remove("backbone.1.num_batches_tracked");
        var log = new CapturingLoggers();
        var report = StateDictLoader.Load(net, sd, File, Options(log));
        Assert.Equal(0L, net.StateDictInOrder()["backbone.1.num_batches_tracked"].item<long>());
        Assert.Equal(new float[] { 2, 3, 4, 5 }, net.StateDictInOrder()["backbone.1.running_var"].data<float>().ToArray());
        Assert.Empty(report.Missing);
        Assert.Contains(log.Lines, l => l.Contains("num_batches_tracked not in the file"));
    }

    [Fact]
    public void AMissingRunningVarIsAnErrorAndNothingIsCopied()
    {
        using var scope = NewDisposeScope();
        using var net = new TinyNet(5);
        var before = Snapshot(net);
        var sd = HandMade();
        sd.Remove("backbone.1.running_var");
        var e = Assert.Throws<CheckpointException>(() => StateDictLoader.Load(net, sd, File, Options()));
        Assert.Equal(File, e.Path);
        Assert.Contains("missing from the file: backbone.1.running_var", e.Message);
        Assert.Contains("do not fit TinyNet", e.Message);
        AssertUnchanged(before, net);
    }

    [Fact]
    public void AnUnexpectedKeyIsAnErrorAndNothingIsCopied()
    {
        using var scope = NewDisposeScope();
        using var net = new TinyNet(5);
        var before = Snapshot(net);
        var sd = HandMade();
        sd["backbone.3.weight"] = ones(2);
        var e = Assert.Throws<CheckpointException>(() => StateDictLoader.Load(net, sd, File, Options()));
        Assert.StartsWith(File + ": ", e.Message);
        Assert.Contains("not in the model: backbone.3.weight", e.Message);
        Assert.DoesNotContain("missing", e.Message);
        AssertUnchanged(before, net);
    }

    [Fact]
    public void AShapeMismatchNamesBothShapesAndTheFileAndNothingIsCopied()
    {
        using var scope = NewDisposeScope();
        using var net = new TinyNet(5);
        var before = Snapshot(net);
        var sd = HandMade();
        // One element, which TorchSharp's load_state_dict would broadcast over all four channels.
        sd["backbone.1.running_mean"] = tensor(new float[] { 9 });
        var e = Assert.Throws<CheckpointException>(() => StateDictLoader.Load(net, sd, File, Options()));
        Assert.StartsWith(File, e.Message);
        Assert.Contains("backbone.1.running_mean: file [1] vs model [4]", e.Message);
        Assert.DoesNotContain("--num-classes", e.Message);
        AssertUnchanged(before, net);

        // A tensor of the right shape but an integer type where the model holds floats is refused too.
        sd["backbone.1.running_mean"] = tensor(new long[] { 1, 2, 3, 4 });
        var e2 = Assert.Throws<CheckpointException>(() => StateDictLoader.Load(net, sd, File, Options()));
        Assert.Contains("backbone.1.running_mean: file Int64 vs model Float32", e2.Message);
        AssertUnchanged(before, net);
    }

    [Fact]
    public void AClassifierOfAnotherClassCountSuggestsNumClassesUnlessFineTuning()
    {
        using var scope = NewDisposeScope();
        using var net = new TinyNet(3);
        var before = Snapshot(net);
        var sd = HandMade(5);
        var e = Assert.Throws<CheckpointException>(() => StateDictLoader.Load(net, sd, File, Options()));
        Assert.Contains("classifier.weight: file [5, 4, 1, 1] vs model [3, 4, 1, 1]", e.Message);
        Assert.Contains("classifier.bias: file [5] vs model [3]", e.Message);
        Assert.Contains("--num-classes", e.Message);
        Assert.Contains("fine-tune", e.Message);
        AssertUnchanged(before, net);

        var log = new CapturingLoggers();
        var report = StateDictLoader.Load(net, sd, File, Options(log, ClassifierRule.ReinitialiseIfDifferent));
        Assert.Equal(new[] { "classifier.weight", "classifier.bias" }, report.Reinitialised);
        Assert.Equal(6, report.Loaded.Count);
        Assert.True(before["classifier.weight"].Equals(net.classifier.weight), "the classifier must keep its fresh initialisation");
        Assert.True(before["classifier.bias"].Equals(net.classifier.bias!), "the classifier must keep its fresh initialisation");
        Assert.Equal(new float[] { 2, 3, 4, 5 }, net.StateDictInOrder()["backbone.1.running_var"].data<float>().ToArray());
        Assert.Contains("re-initialised classifier.weight: file [5, 4, 1, 1] vs model [3, 4, 1, 1]", log.Lines);
        Assert.Contains("re-initialised classifier.bias: file [5] vs model [3]", log.Lines);
        // A structured sink gets the key and both shapes as properties, not only the text.
        var note = log.Records.First(r => r.Text.StartsWith("re-initialised classifier.weight", StringComparison.Ordinal));
        Assert.Equal("classifier.weight", note.Properties["Key"]);
        Assert.Equal("5, 4, 1, 1", note.Properties["FileShape"]);
    }

    [Fact]
    public void FineTuningStillRefusesAMismatchOutsideTheClassifier()
    {
        using var scope = NewDisposeScope();
        using var net = new TinyNet(3);
        var before = Snapshot(net);
        var sd = HandMade(5);
        sd["backbone.1.weight"] = ones(8);
        var e = Assert.Throws<CheckpointException>(() => StateDictLoader.Load(net, sd, File, Options(rule: ClassifierRule.ReinitialiseIfDifferent)));
        Assert.Contains("backbone.1.weight: file [8] vs model [4]", e.Message);
        Assert.DoesNotContain("classifier.weight", e.Message);
        AssertUnchanged(before, net);
    }

    [Fact]
    public void APartialLoadReportsWhatItSkippedAndLeavesOtherCountersAlone()
    {
        using var scope = NewDisposeScope();
        using var net = new TinyNet(5);
        using (no_grad()) net.StateDictInOrder()["backbone.1.num_batches_tracked"].fill_(7L.ToScalar());
        var before = Snapshot(net);
        var sd = HandMade();
        foreach (var k in sd.Keys.Where(k => k.StartsWith("backbone.1.", StringComparison.Ordinal)).ToList()) sd.Remove(k);
        sd["head.weight"] = ones(1);
        var log = new CapturingLoggers();
        var report = StateDictLoader.Load(net, sd, File, Options(log, partial: true));
        Assert.Equal(new[] { "backbone.1.weight", "backbone.1.bias", "backbone.1.running_mean", "backbone.1.running_var" }, report.Missing);
        Assert.Equal(new[] { "head.weight" }, report.Unexpected);
        Assert.Equal(7L, net.StateDictInOrder()["backbone.1.num_batches_tracked"].item<long>());
        Assert.True(before["backbone.1.running_var"].Equals(net.StateDictInOrder()["backbone.1.running_var"]));
        Assert.Equal(new float[] { 0, 1, 2, 3, 4 }, net.classifier.bias!.data<float>().ToArray());
        Assert.Contains(log.Lines, l => l.Contains("head.weight"));

        // Shapes are checked in a partial load too.
        sd["classifier.bias"] = zeros(2);
        Assert.Throws<CheckpointException>(() => StateDictLoader.Load(net, sd, File, Options(partial: true)));
    }
}

/// <summary>Tensor.TotalCount is process-wide: this runs alone, after the parallel tests.</summary>
[Collection(LiveTensorCountCollection.Name)]
public class StateDictLoaderLeakTests
{
    private static void Settle()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    [Fact]
    public void LoadsAndFailedLoadsLeaveNoTensorsBehind()
    {
        using var net = new TinyNet(5);
        using var good = new TinyNet(5);
        using var bad = new TinyNet(3);
        var goodSd = good.StateDictInOrder();
        var badSd = bad.StateDictInOrder();
        StateDictLoader.Load(net, goodSd, "good");
        Settle();
        long before = Tensor.TotalCount;
        StateDictLoader.Load(net, goodSd, "good");
        Assert.Throws<CheckpointException>(() => StateDictLoader.Load(net, badSd, "bad"));
        Settle();
        Assert.Equal(before, Tensor.TotalCount);
    }
}
