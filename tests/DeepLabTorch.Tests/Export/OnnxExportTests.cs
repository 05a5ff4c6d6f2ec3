using DeepLabTorch.Export.Onnx;
using DeepLabTorch.Extensions;
using Microsoft.ML.OnnxRuntime;
using TensorElementType = Microsoft.ML.OnnxRuntime.Tensors.TensorElementType;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DeepLabTorch.Tests.Export;

/// <summary>
/// A small network with every construct DeepLabV3+ needs: conv-bn-relu, fixed padding + dilated
/// depthwise conv + relu6, a residual add, an image-pooling branch resized back, concat, a decoder
/// upsample, a classifier and the final resize to the input size.
/// </summary>
internal sealed class MiniDeepLab : nn.Module<Tensor, Tensor>
{
    public readonly Conv2d stem; public readonly BatchNorm2d stem_bn;
    public readonly Conv2d dw; public readonly BatchNorm2d dw_bn;
    public readonly Conv2d pw; public readonly BatchNorm2d pw_bn;
    public readonly Conv2d down; public readonly BatchNorm2d down_bn;
    public readonly Conv2d pool_conv; public readonly BatchNorm2d pool_bn;
    public readonly Conv2d branch; public readonly BatchNorm2d branch_bn;
    public readonly Conv2d classifier;

    public MiniDeepLab() : base(nameof(MiniDeepLab))
    {
        stem = nn.Conv2d(3, 8, 3, stride: 2, padding: 1L, bias: false); stem_bn = nn.BatchNorm2d(8);
        dw = nn.Conv2d(8, 8, 3, padding: 0L, dilation: 2, groups: 8, bias: false); dw_bn = nn.BatchNorm2d(8);
        pw = nn.Conv2d(8, 8, 1, bias: false); pw_bn = nn.BatchNorm2d(8);
        down = nn.Conv2d(8, 8, 3, stride: 2, padding: 1, bias: false); down_bn = nn.BatchNorm2d(8);
        pool_conv = nn.Conv2d(8, 4, 1, bias: false); pool_bn = nn.BatchNorm2d(4);
        branch = nn.Conv2d(8, 4, 1, bias: false); branch_bn = nn.BatchNorm2d(4);
        classifier = nn.Conv2d(16, 3, 1);
        RegisterComponents();
        // Non-trivial running statistics so that folding is really tested.
        using var _ = no_grad();
        foreach (var bn in new[] { stem_bn, dw_bn, pw_bn, down_bn, pool_bn, branch_bn })
        {
            nn.init.uniform_(bn.weight!, 0.5, 1.5);
            nn.init.uniform_(bn.bias!, -0.3, 0.3);
            nn.init.uniform_(bn.running_mean!, -0.2, 0.2);
            nn.init.uniform_(bn.running_var!, 0.5, 1.5);
        }
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var s = stem_bn.forward(stem.forward(x)).relu();
        var d = dw_bn.forward(dw.forward(F.pad(s, new long[] { 2, 2, 2, 2 })));
        d = F.relu6(d);
        var r = pw_bn.forward(pw.forward(d)) + s;
        var h = down_bn.forward(down.forward(r)).relu();
        var p = F.adaptive_avg_pool2d(h, (1, 1));
        p = pool_bn.forward(pool_conv.forward(p)).relu();
        p = F.interpolate(p, new[] { h.shape[2], h.shape[3] }, mode: InterpolationMode.Bilinear, align_corners: false);
        var a = branch_bn.forward(branch.forward(h)).relu();
        var c = cat(new[] { a, p }, 1);
        var u = F.interpolate(c, new[] { r.shape[2], r.shape[3] }, mode: InterpolationMode.Bilinear, align_corners: false);
        var logits = classifier.forward(cat(new[] { u, r }, 1));
        return F.interpolate(logits, new[] { x.shape[2], x.shape[3] }, mode: InterpolationMode.Bilinear, align_corners: true).MoveToOuterDisposeScope();
    }

    /// <summary>The same computation as ONNX nodes; returns the logits value.</summary>
    public string Export(OnnxGraphBuilder g, string x)
    {
        var s = g.Relu(g.ConvBn(x, stem, stem_bn));
        var d = g.Relu6(g.ConvBn(g.Pad(s, 2, 2, 2, 2), dw, dw_bn));
        var r = g.Add(g.ConvBn(d, pw, pw_bn), s);
        var h = g.Relu(g.ConvBn(r, down, down_bn));
        var p = g.Relu(g.ConvBn(g.GlobalAveragePool(h), pool_conv, pool_bn));
        p = g.ResizeLike(p, h, alignCorners: false);
        var a = g.Relu(g.ConvBn(h, branch, branch_bn));
        var u = g.ResizeLike(g.Concat(new[] { a, p }), r, alignCorners: false);
        var logits = g.Conv(g.Concat(new[] { u, r }), classifier);
        return g.ResizeLike(logits, x, alignCorners: true);
    }
}

public class OnnxExportTests
{
    private static readonly float[] Mean = { 0.485f, 0.456f, 0.406f }, Std = { 0.229f, 0.224f, 0.225f };

    /// <summary>
    /// Runs the model's one input through ONNX Runtime in-process (one thread, as a reference run should
    /// be deterministic) and returns its first output, int64 labels widened to float.
    /// </summary>
    internal static (float[] data, long[] dims) RunOrt<T>(string model, T[] input, long[] dims) where T : unmanaged
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
        using var session = new InferenceSession(model, options);
        using var x = OrtValue.CreateTensorValueFromMemory(input, dims);
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, new[] { session.InputNames[0] }, new[] { x }, new[] { session.OutputNames[0] });
        var y = results[0];
        var info = y.GetTensorTypeAndShape();
        var data = info.ElementDataType switch
        {
            TensorElementType.Float => y.GetTensorDataAsSpan<float>().ToArray(),
            TensorElementType.Int64 => y.GetTensorDataAsSpan<long>().ToArray().Select(v => (float)v).ToArray(),
            var t => throw new InvalidOperationException($"unexpected ONNX output type {t}"),
        };
        return (data, info.Shape);
    }

    private static string Build(MiniDeepLab net, string path, bool preprocessing = false, bool argmax = false)
    {
        var g = new OnnxGraphBuilder();
        string x;
        if (preprocessing)
        {
            var raw = g.Input("input", OnnxType.UInt8, "N", "H", "W", 3L);
            x = g.Preprocess(raw, Mean, Std);
        }
        else x = g.Input("input", OnnxType.Float, "N", 3L, "H", "W");
        var logits = net.Export(g, x);
        if (argmax) g.Output(g.ArgMax(logits, 1), "labels", OnnxType.Int64, "N", "H", "W");
        else g.Output(logits, "logits", OnnxType.Float, "N", 3L, "H", "W");
        g.Save(path);
        return path;
    }

    [LinuxFact(LinuxOnly.Python)]
    public void TheModelPassesOnnxCheckerWithDynamicShapes()
    {
        using var dir = new TempDir();
        manual_seed(5);
        using var net = new MiniDeepLab();
        net.eval();
        var model = Build(net, dir["m.onnx"]);
        var report = Python.Run("onnx_check.py", model);
        Assert.Contains("opset 13", report);
        Assert.Contains("('input', ['N', 3, 'H', 'W'])", report);
        Assert.Contains("('logits', ['N', 3, 'H', 'W'])", report);
        Assert.Contains("Conv", report);
        Assert.DoesNotContain("BatchNormalization", report); // folded
    }

    [Fact]
    public void FoldingBatchNormKeepsTheConvOutput()
    {
        manual_seed(6);
        using var net = new MiniDeepLab();
        net.eval();
        using var scope = NewDisposeScope();
        var x = randn(1, 3, 9, 9);
        var reference = net.stem_bn.forward(net.stem.forward(x));
        var (w, b) = OnnxGraphBuilder.FoldBatchNorm(net.stem, net.stem_bn);
        var folded = F.conv2d(x, w, b, net.stem.stride, net.stem.padding, net.stem.dilation, net.stem.groups);
        Assert.True((folded - reference).abs().max().item<float>() < 1e-5);
        w.Dispose(); b.Dispose();
    }

    [Fact]
    public void OnnxRuntimeMatchesOurForwardAtTwoSizes()
    {
        using var dir = new TempDir();
        manual_seed(7);
        using var net = new MiniDeepLab();
        net.eval();
        var model = Build(net, dir["m.onnx"]);
        foreach (var dims in new[] { new long[] { 1, 3, 33, 41 }, new long[] { 2, 3, 24, 20 } })
        {
            using var scope = NewDisposeScope();
            var x = randn(dims);
            Tensor ours;
            using (no_grad()) ours = net.forward(x);
            var (theirs, shape) = RunOrt(model, x.ToArray<float>(), dims);
            Assert.Equal(ours.shape, shape);
            var a = ours.ToArray<float>();
            double maxDiff = 0;
            for (int i = 0; i < a.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(a[i] - theirs[i]));
            Assert.True(maxDiff <= 1e-4, $"max |ORT - ours| = {maxDiff} at [{string.Join(",", dims)}]");
        }
    }

    [LinuxFact(LinuxOnly.Python)]
    public void PreprocessingAndArgmaxVariantsMatch()
    {
        using var dir = new TempDir();
        manual_seed(8);
        using var net = new MiniDeepLab();
        net.eval();
        var model = Build(net, dir["pre.onnx"], preprocessing: true, argmax: true);
        Python.Run("onnx_check.py", model);

        const int n = 1, h = 17, w = 23;
        var rng = new Random(3);
        var rgb = new byte[n * h * w * 3];
        rng.NextBytes(rgb);
        // Our own normalization, by hand: NHWC bytes → NCHW floats (x/255 − mean)/std.
        var f = new float[n * 3 * h * w];
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++)
                for (int c = 0; c < 3; c++)
                    f[c * h * w + y * w + xx] = (rgb[(y * w + xx) * 3 + c] / 255f - Mean[c]) / Std[c];
        using var scope = NewDisposeScope();
        var input = tensor(f, new long[] { n, 3, h, w });
        Tensor logits;
        using (no_grad()) logits = net.forward(input);
        var labels = logits.argmax(1).ToArray<long>();
        var (theirs, shape) = RunOrt(model, rgb, new long[] { n, h, w, 3 });
        Assert.Equal(new long[] { n, h, w }, shape);
        // Labels may differ only where two logits tie within float noise.
        var l = logits.permute(0, 2, 3, 1).contiguous().ToArray<float>();
        int differ = 0;
        for (int i = 0; i < labels.Length; i++)
        {
            if (labels[i] == (long)theirs[i]) continue;
            differ++;
            Assert.True(Math.Abs(l[i * 3 + labels[i]] - l[i * 3 + (long)theirs[i]]) < 1e-4, $"pixel {i}: {labels[i]} vs ORT {theirs[i]}");
        }
        Assert.True(differ <= 2);
    }
}
