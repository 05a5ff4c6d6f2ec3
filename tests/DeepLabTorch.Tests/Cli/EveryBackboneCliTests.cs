using DeepLabTorch.Checkpoints;
using DeepLabTorch.Data;
using DeepLabTorch.Models;
using DeepLabTorch.Tests.Training;
using Xunit;
using Xunit.Abstractions;

namespace DeepLabTorch.Tests.Cli;

/// <summary>
/// Every catalogue backbone through the CLI as a user takes it: train (one epoch of two tiny steps),
/// predict with the checkpoint, export it to ONNX. A backbone added to ModelCatalog is covered here.
/// </summary>
public class EveryBackboneCliTests(ITestOutputHelper log)
{
    public static TheoryData<string> CatalogueBackbones()
    {
        var data = new TheoryData<string>();
        foreach (var name in ModelCatalog.Names) data.Add(name);
        return data;
    }

    [Fact]
    public void BackboneHelpListsTheCatalogue()
    {
        var dir = ReferenceScripts.TempDir("cli-backbone-help");
        try
        {
            foreach (var verb in new[] { "train", "eval", "predict", "export" })
            {
                var (_, stdout, stderr) = CliRunner.Run(dir, verb, "--help");
                var help = string.Join(" ", (stdout + stderr).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
                foreach (var e in ModelCatalog.Entries)
                    Assert.Contains($"{e.Name} ({e.Title})", help);
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void AnUnknownBackboneIsRefusedWithTheCatalogueNames()
    {
        var dir = ReferenceScripts.TempDir("cli-backbone-bad");
        try
        {
            var (code, _, stderr) = CliRunner.Run(dir, "train", "--dataset", "synthetic", "--data-root", Path.Combine(dir, "d"), "--backbone", "vgg16",
                "--output", Path.Combine(dir, "o"));
            Assert.NotEqual(0, code);
            Assert.Contains("vgg16", stderr);
            Assert.Contains(string.Join(", ", ModelCatalog.Names), stderr);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Theory]
    [MemberData(nameof(CatalogueBackbones))]
    public void TrainPredictAndExportWork(string backbone)
    {
        var dir = ReferenceScripts.TempDir("cli-backbone-" + backbone);
        try
        {
            var data = Path.Combine(dir, "synth");
            var run = Path.Combine(dir, "run");
            // 6 images of 40×36: 4 to train (two steps of 2), the rest to validate.
            Synthetic.Generate(data, 6, 3, "voc", 40, 36);
            Check(dir, "train", "--dataset", "synthetic", "--data-root", data, "--backbone", backbone, "--lr", "0.01", "--epochs", "1",
                "--batch-size", "2", "--crop-size", "33", "--base-size", "36", "--workers", "1", "--threads", "2", "--output", run);
            var weights = Path.Combine(run, "last.safetensors");
            Assert.Equal(backbone, CheckpointStore.ReadInfo(weights)!.Model!.Backbone);

            var image = Directory.GetFiles(Path.Combine(data, "VOCdevkit", "VOC2012", "JPEGImages")).Order().First();
            Check(dir, "predict", "--weights", weights, "--input", image, "--output", Path.Combine(dir, "pred"), "--threads", "2");
            Assert.True(File.Exists(Path.Combine(dir, "pred", Path.GetFileNameWithoutExtension(image) + ".png")));

            var onnx = Path.Combine(dir, "m.onnx");
            var stdout = Check(dir, "export", "--weights", weights, "--format", "onnx", "--output", onnx);
            Assert.Contains($"({backbone}, output stride 16, 21 classes", stdout);
            Assert.True(new FileInfo(onnx).Length > 1000);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private string Check(string dir, params string[] args)
    {
        var (code, stdout, stderr) = CliRunner.Run(dir, args);
        if (code != 0) log.WriteLine($"deeplab {string.Join(" ", args)}\n{stdout}\n{stderr}");
        Assert.Equal(0, code);
        return stdout;
    }
}
