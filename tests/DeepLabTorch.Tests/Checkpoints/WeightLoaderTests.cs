using DeepLabTorch.Checkpoints;
using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Checkpoints;

public class WeightLoaderTests : IClassFixture<PthFixture>
{
    private readonly PthFixture _files;
    public WeightLoaderTests(PthFixture files) { _files = files; }

    private static readonly StateDictKeys TinyKeys = new(new Dictionary<string, string>(), "classifier.");
    private static readonly StateDictLoadOptions Strict = new() { Keys = TinyKeys };
    private static StateDictLoadOptions FineTune(Microsoft.Extensions.Logging.ILogger? log) =>
        new() { Keys = TinyKeys, Classifier = ClassifierRule.ReinitialiseIfDifferent, Logger = log };

    [LinuxFact(LinuxOnly.Python)]
    public void ADifferentClassCountReinitialisesOnlyTheClassifier()
    {
        using var net = new TinyNet(3);
        using var before = net.classifier.weight.clone();
        var log = new CapturingLoggers();
        var report = StateDictLoader.LoadFile(net, _files["reference.pth.tar"], FineTune(log), out var info);

        Assert.Equal(new[] { "classifier.weight", "classifier.bias" }, report.Reinitialised);
        Assert.Equal(6, report.Loaded.Count);
        Assert.Contains(log.Lines, l => l.Contains("re-initialised classifier.weight: file [5, 4, 1, 1] vs model [3, 4, 1, 1]"));
        Assert.True(before.Equals(net.classifier.weight), "the classifier must keep its fresh initialisation");

        var sd = WeightFiles.LoadStateDict(_files["bare.pth"], out _);
        try
        {
            Assert.True(sd["backbone.0.weight"].Equals(net.StateDictInOrder()["backbone.0.weight"]));
            Assert.True(sd["backbone.1.running_var"].Equals(net.StateDictInOrder()["backbone.1.running_var"]));
        }
        finally { foreach (var t in sd.Values) t.Dispose(); }
        Assert.Equal("pytorch-reference", info!.Source);
    }

    [LinuxFact(LinuxOnly.Python)]
    public void WithoutExpectedClassesAClassifierMismatchIsAnError()
    {
        using var net = new TinyNet(3);
        var e = Assert.Throws<CheckpointException>(() => StateDictLoader.LoadFile(net, _files["bare.pth"], Strict, out _));
        Assert.Contains("classifier.weight: file [5, 4, 1, 1] vs model [3, 4, 1, 1]", e.Message);
        Assert.Contains("--num-classes", e.Message);
    }

    [LinuxFact(LinuxOnly.Python)]
    public void MismatchesOutsideTheClassifierNameKeysAndShapes()
    {
        using var dir = new TempDir();
        using var scope = NewDisposeScope();
        using var net = new TinyNet(5);
        var sd = new Dictionary<string, Tensor>(net.StateDictInOrder());
        sd["backbone.0.weight"] = zeros(4, 3, 5, 5);
        sd["extra.weight"] = zeros(1);
        sd.Remove("backbone.1.bias");
        var path = dir["bad.safetensors"];
        Safetensors.Write(path, sd, null);
        var e = Assert.Throws<CheckpointException>(() => StateDictLoader.LoadFile(net, path, FineTune(null), out _));
        Assert.Contains("backbone.0.weight: file [4, 3, 5, 5] vs model [4, 3, 3, 3]", e.Message);
        Assert.Contains("missing from the file: backbone.1.bias", e.Message);
        Assert.Contains("not in the model: extra.weight", e.Message);
        Assert.StartsWith(path, e.Message);
    }

    [LinuxFact(LinuxOnly.Python)]
    public void AliasesAndModulePrefixesAreResolved()
    {
        using var dir = new TempDir();
        using var scope = NewDisposeScope();
        using var src = new TinyNet(5);
        var sd = new Dictionary<string, Tensor>();
        foreach (var (k, t) in src.StateDictInOrder()) sd["module." + k] = t;
        sd["module.low.weight"] = src.backbone[0] is Conv2d c ? c.weight : throw new InvalidOperationException();
        var path = dir["alias.safetensors"];
        Safetensors.Write(path, sd, null);
        using var net = new TinyNet(5);
        var keys = new StateDictKeys(new Dictionary<string, string> { ["low.weight"] = "backbone.0.weight" }, "classifier.");
        var report = StateDictLoader.LoadFile(net, path, new StateDictLoadOptions { Keys = keys }, out _);
        Assert.Equal(8, report.Loaded.Count);
        Assert.True(net.classifier.weight.Equals(src.classifier.weight));
    }

    [LinuxFact(LinuxOnly.Python)]
    public void FlagsThatContradictACheckpointNameBothValues()
    {
        var info = new CheckpointInfo { Model = new CheckpointModel("mobilenet", 16, 21) };
        var e = Assert.Throws<UserException>(() => WeightFiles.ResolveModel("run/last.safetensors", info, "resnet", null, null));
        Assert.Contains("--backbone resnet contradicts run/last.safetensors, which holds a mobilenet model (leave --backbone out", e.Message);
        e = Assert.Throws<UserException>(() => WeightFiles.ResolveModel("f", info, null, 8, null));
        Assert.Contains("--out-stride 8", e.Message);
        Assert.Contains("output stride 16", e.Message);
        Assert.Equal(new CheckpointModel("mobilenet", 16, 2), WeightFiles.ResolveModel("f", info, "MobileNet", 16, 2));
        Assert.Equal(new CheckpointModel("xception", 8, 21), WeightFiles.ResolveModel("f", null, "xception", 8, null));
    }
}
