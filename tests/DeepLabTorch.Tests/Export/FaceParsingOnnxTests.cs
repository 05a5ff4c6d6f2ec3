using DeepLabTorch.Export;
using DeepLabTorch.Extensions;
using DeepLabTorch.Models;
using DeepLabTorch.Tests.Cli;
using DeepLabTorch.Tests.Training;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Export;

/// <summary>The face-parsing networks exported to ONNX give their own logits in ONNX Runtime, and predict runs the file.</summary>
public class FaceParsingOnnxTests(ITestOutputHelper output)
{
    /// <summary>A network with BatchNorm statistics, scales and shifts away from 0 and 1, so folding is exercised.</summary>
    private static SegmentationModel Model(string name)
    {
        manual_seed(5);
        var m = ModelFactory.Build(new ModelConfig(name, 16, 4));
        DeepLabOnnxTests.AwayFromIdentity(m);
        return m;
    }

    [LinuxTheory(LinuxOnly.Python)]
    [InlineData("bisenet")]
    [InlineData("stdc1")]
    [InlineData("stdc2")]
    public void OnnxRuntimeMatchesTheNetworkAtTwoSizes(string name)
    {
        using var dir = new TempDir();
        using var model = Model(name);
        OnnxExport.Write(model, dir["m.onnx"]);
        var report = Python.Run("onnx_check.py", dir["m.onnx"]);
        Assert.Contains("('input', ['N', 3, 'H', 'W'])", report);
        Assert.Contains("('logits', ['N', 4, 'H', 'W'])", report);
        Assert.DoesNotContain("BatchNormalization", report);
        DeepLabOnnxTests.AssertOrtMatches(model, dir["m.onnx"], name, 1e-4, output, new long[] { 1, 3, 64, 64 }, new long[] { 2, 3, 65, 97 });
    }

    [Fact]
    public void PredictRunsAnExportedFaceParser()
    {
        var dir = ReferenceScripts.TempDir("face-onnx");
        try
        {
            var checkpoint = Path.Combine(dir, "m.safetensors");
            using (var model = Model("stdc1"))
                DeepLabTorch.Checkpoints.CheckpointStore.Save(checkpoint, model, null,
                    new DeepLabTorch.Checkpoints.CheckpointInfo { Model = new DeepLabTorch.Checkpoints.CheckpointModel("stdc1", 16, 4) });
            var onnx = Path.Combine(dir, "m.onnx");
            var export = CliRunner.Run(dir, "export", "--weights", checkpoint, "--format", "onnx", "--output", onnx);
            Assert.True(export.Code == 0, export.Stdout + export.Stderr);
            var image = Path.Combine(dir, "face.png");
            DeepLabTorch.Data.ImageCodec.WritePng(image, Enumerable.Range(0, 40 * 48 * 3).Select(i => (byte)(i * 7 % 251)).ToArray(), 40, 48);
            var viaOnnx = CliRunner.Run(dir, "predict", "--weights", onnx, "--input", image, "--output", Path.Combine(dir, "onnx"));
            Assert.True(viaOnnx.Code == 0, viaOnnx.Stdout + viaOnnx.Stderr);
            var viaTorch = CliRunner.Run(dir, "predict", "--weights", checkpoint, "--input", image, "--output", Path.Combine(dir, "torch"));
            Assert.True(viaTorch.Code == 0, viaTorch.Stdout + viaTorch.Stderr);
            var (a, _, _) = DeepLabTorch.Data.ImageCodec.DecodeMask(Path.Combine(dir, "onnx", "face.png"));
            var (b, _, _) = DeepLabTorch.Data.ImageCodec.DecodeMask(Path.Combine(dir, "torch", "face.png"));
            // Class maps from float32 logits that agree to 1e-4 of their scale: at most a few ties may flip.
            Assert.True(a.Zip(b).Count(p => p.First != p.Second) <= a.Length / 100, "ONNX Runtime and TorchSharp class maps differ");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
