using DeepLabTorch.Export;
using DeepLabTorch.Models;
using DeepLabTorch.Extensions;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Export;

public class DeepLabOnnxTests(ITestOutputHelper output)
{
    /// <summary>A DeepLabV3+ with non-trivial BatchNorm statistics, so folding is exercised.</summary>
    private static DeepLabV3Plus Model(string backbone, int outputStride, bool alignCorners = true)
    {
        manual_seed(21);
        var m = ModelFactory.Create(new ModelConfig(backbone, outputStride, 3, alignCorners));
        AwayFromIdentity(m);
        return m;
    }

    /// <summary>Running statistics, BatchNorm scales and shifts away from 0 and 1 (so folding them is exercised); eval mode.</summary>
    internal static void AwayFromIdentity(nn.Module m)
    {
        using (no_grad())
            foreach (var (name, t) in m.named_buffers())
            {
                if (name.EndsWith("running_mean", StringComparison.Ordinal)) { using var r = randn(t.shape) * 0.1; t.copy_(r); }
                if (name.EndsWith("running_var", StringComparison.Ordinal)) { using var r = rand(t.shape) + 0.5; t.copy_(r); }
            }
        using (no_grad())
            foreach (var (name, p) in m.named_parameters())
            {
                // BatchNorm scale and shift away from 1 and 0, so folding them is exercised too.
                if (p.dim() != 1) continue;
                if (name.EndsWith(".weight", StringComparison.Ordinal)) { using var r = rand(p.shape) + 0.5; p.copy_(r); }
                if (name.EndsWith(".bias", StringComparison.Ordinal)) { using var r = randn(p.shape) * 0.1; p.copy_(r); }
            }
        m.eval();
    }

    /// <summary>Exports the model and compares ONNX Runtime's logits with the model's own at each input size.</summary>
    private void CheckParity(string backbone, int os, bool align, double tolerance, params long[][] sizes)
    {
        using var dir = new TempDir();
        using var model = Model(backbone, os, align);
        DeepLabOnnxExporter.Export(model, dir["m.onnx"]);
        // onnx.checker (full check with shape inference) on the whole network, then ORT's numbers.
        var report = Python.Run("onnx_check.py", dir["m.onnx"]);
        Assert.Contains("opset 13", report);
        Assert.Contains("('input', ['N', 3, 'H', 'W'])", report);
        Assert.Contains("('logits', ['N', 3, 'H', 'W'])", report);
        Assert.DoesNotContain("BatchNormalization", report);
        AssertOrtMatches(model, dir["m.onnx"], $"{backbone} OS{os}", tolerance, output, sizes);
    }

    /// <summary>
    /// ONNX Runtime's logits of the exported file against the model's own, at each input size: within a fraction of the
    /// logits' scale (dozens of folded float32 layers round differently from conv + BatchNorm).
    /// </summary>
    internal static void AssertOrtMatches(nn.Module<Tensor, Tensor> model, string onnx, string what, double tolerance, ITestOutputHelper output, params long[][] sizes)
    {
        foreach (var dims in sizes)
        {
            using var scope = NewDisposeScope();
            var x = randn(dims);
            Tensor ours;
            using (no_grad()) ours = model.forward(x);
            var (theirs, shape) = OnnxExportTests.RunOrt(onnx, x.ToArray<float>(), dims);
            Assert.Equal(ours.shape, shape);
            var a = ours.ToArray<float>();
            double maxDiff = 0, maxAbs = 0;
            for (int i = 0; i < a.Length; i++)
            {
                maxDiff = Math.Max(maxDiff, Math.Abs(a[i] - theirs[i]));
                maxAbs = Math.Max(maxAbs, Math.Abs(a[i]));
            }
            output.WriteLine($"{what} [{string.Join(",", dims)}]: max |ORT - ours| = {maxDiff:G3} = {maxDiff / Math.Max(1, maxAbs):G3} of the logit scale");
            Assert.True(maxDiff <= tolerance * Math.Max(1, maxAbs),
                $"{what}: max |ORT - ours| = {maxDiff} at [{string.Join(",", dims)}], max |logit| = {maxAbs}");
        }
    }

    [LinuxFact(LinuxOnly.Python)]
    public void OnnxRuntimeMatchesTheModelAtTwoSizes() =>
        CheckParity("mobilenet", 16, true, 1e-4, new long[] { 1, 3, 65, 97 }, new long[] { 2, 3, 48, 40 });

    [LinuxFact(LinuxOnly.Python)]
    public void OnnxRuntimeMatchesTheModelAtOutputStride8() =>
        CheckParity("mobilenet", 8, false, 1e-4, new long[] { 1, 3, 65, 97 }, new long[] { 2, 3, 48, 40 });

    // Measured: 1.3e-6 (Xception) and 2e-6 (ResNet) of the logit scale, against 2.5e-5 for MobileNetV2,
    // whose ReLU6 blocks amplify rounding. 1e-5 also catches small graph mistakes deep in the backbone
    // (a block-start ReLU left out of Xception's export moves its logits by about 1e-4 of their scale).
    [LinuxFact(LinuxOnly.Python)]
    public void XceptionExportMatchesOnnxRuntime()
    {
        CheckParity("xception", 16, true, 1e-5, new long[] { 1, 3, 65, 97 }, new long[] { 2, 3, 33, 41 });
        CheckParity("xception", 8, false, 1e-5, new long[] { 1, 3, 49, 57 });
    }

    /// <summary>Every catalogue backbone writes its own graph (Backbone.WriteGraph): one small input each, at the loosest tolerance above.</summary>
    [LinuxTheory(LinuxOnly.Python)]
    [MemberData(nameof(CatalogueBackbones))]
    public void EveryCatalogueBackboneExports(string backbone) =>
        CheckParity(backbone, 16, true, 1e-4, new long[] { 1, 3, 33, 41 });

    public static TheoryData<string> CatalogueBackbones()
    {
        var data = new TheoryData<string>();
        foreach (var name in ModelCatalog.Names) data.Add(name);
        return data;
    }

    [LinuxFact(LinuxOnly.Python)]
    public void ResNetExportMatchesOnnxRuntime()
    {
        CheckParity("resnet", 8, false, 1e-5, new long[] { 1, 3, 65, 97 }, new long[] { 2, 3, 33, 41 });
        CheckParity("resnet", 16, true, 1e-5, new long[] { 1, 3, 49, 57 });
    }
}
