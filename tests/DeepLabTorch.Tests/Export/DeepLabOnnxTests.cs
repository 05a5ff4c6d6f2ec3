using DeepLabTorch.Export;
using DeepLabTorch.Models;
using DeepLabTorch.Tests.Checkpoints;
using Xunit;
using static DeepLabTorch.Torch.torch;

namespace DeepLabTorch.Tests.Export;

public class DeepLabOnnxTests
{
    /// <summary>A MobileNetV2 DeepLabV3+ with non-trivial BatchNorm statistics, so folding is exercised.</summary>
    private static DeepLabV3Plus Model(int outputStride, bool alignCorners = true)
    {
        manual_seed(21);
        var m = ModelFactory.Create(new ModelConfig("mobilenet", outputStride, 3, alignCorners));
        using (no_grad())
            foreach (var (name, t) in m.named_buffers())
            {
                if (name.EndsWith("running_mean", StringComparison.Ordinal)) { using var r = randn(t.shape) * 0.1; t.copy_(r); }
                if (name.EndsWith("running_var", StringComparison.Ordinal)) { using var r = rand(t.shape) + 0.5; t.copy_(r); }
            }
        m.eval();
        return m;
    }

    [OrtFact]
    public void OnnxRuntimeMatchesTheModelAtTwoSizes()
    {
        foreach (var (os, align) in new[] { (16, true), (8, false) })
        {
            using var dir = new TempDir();
            using var model = Model(os, align);
            DeepLabOnnxExporter.Export(model, dir["m.onnx"]);
            foreach (var dims in new[] { new long[] { 1, 3, 65, 97 }, new long[] { 2, 3, 48, 40 } })
            {
                using var scope = NewDisposeScope();
                var x = randn(dims);
                Python.WriteFloats(dir["x.bin"], x.ToArray<float>());
                Tensor ours;
                using (no_grad()) ours = model.forward(x);
                var (theirs, shape) = OnnxExportTests.RunOrt(dir["m.onnx"], dir.Path, dir["x.bin"], "float32", dims, "logits");
                Assert.Equal(ours.shape, shape);
                var a = ours.ToArray<float>();
                double maxDiff = 0, maxAbs = 0;
                for (int i = 0; i < a.Length; i++)
                {
                    maxDiff = Math.Max(maxDiff, Math.Abs(a[i] - theirs[i]));
                    maxAbs = Math.Max(maxAbs, Math.Abs(a[i]));
                }
                // 1e-4 of the logits' scale: 50 folded float32 layers round differently from conv+BN.
                Assert.True(maxDiff <= 1e-4 * Math.Max(1, maxAbs),
                    $"OS{os}: max |ORT - ours| = {maxDiff} at [{string.Join(",", dims)}], max |logit| = {maxAbs}");
            }
        }
    }

    [Fact]
    public void OtherBackbonesAreRefusedClearly()
    {
        using var dir = new TempDir();
        using var m = ModelFactory.Create(new ModelConfig("resnet", 16, 2));
        var e = Assert.Throws<UserException>(() => DeepLabOnnxExporter.Export(m, dir["r.onnx"]));
        Assert.Contains("resnet", e.Message);
        Assert.False(File.Exists(dir["r.onnx"]));
    }
}
