using DeepLabTorch.Checkpoints;
using DeepLabTorch.Extensions;
using DeepLabTorch.Models;
using DeepLabTorch.Tests.Cli;
using Xunit;

namespace DeepLabTorch.Tests.Models;

/// <summary>One loader for every verb: a plain weight file is recognised the same way by export, eval and predict.</summary>
public class ModelLoaderTests
{
    private static string PlainWeights(TempDir dir, int classes)
    {
        using var model = new DeepLabV3Plus(new ModelConfig("mobilenet", 16, classes));
        var path = dir["plain.safetensors"];
        Safetensors.Write(path, model.ReferenceStateDict(), null);
        return path;
    }

    [Fact]
    public void ExportRecognisesBackboneAndClassesFromThePlainFile()
    {
        using var dir = new TempDir();
        var path = PlainWeights(dir, 4);
        // Before the single loader, export assumed 21 classes for a file without our metadata and failed here.
        var (code, stdout, stderr) = CliRunner.Run(dir.Path, "export", "--weights", path, "--format", "onnx", "--output", dir["m.onnx"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("mobilenet, output stride 16, 4 classes", stdout);
        Assert.True(File.Exists(dir["m.onnx"]));
    }

    [Fact]
    public void ABackboneFlagThatContradictsTheKeysNamesBoth()
    {
        using var dir = new TempDir();
        var path = PlainWeights(dir, 3);
        var e = Assert.Throws<UserException>(() => ModelLoader.Load(path, new ModelRequest { Backbone = "resnet" }));
        Assert.Contains("--backbone resnet", e.Message);
        Assert.Contains("mobilenet", e.Message);
        Assert.Contains("plain.safetensors", e.Message);
    }

    [Fact]
    public void NewClassifierReinitialisesOnlyTheClassifier()
    {
        using var dir = new TempDir();
        var path = PlainWeights(dir, 3);
        using var loaded = ModelLoader.Load(path, new ModelRequest { NumClasses = 5, NewClassifier = true });
        Assert.Equal(5, loaded.Config.NumClasses);
        Assert.Equal(new[] { "decoder.last_conv.8.weight", "decoder.last_conv.8.bias" }, loaded.Report.Reinitialised);
        Assert.Throws<CheckpointException>(() => ModelLoader.Load(path, new ModelRequest { NumClasses = 5 }));
    }
}
