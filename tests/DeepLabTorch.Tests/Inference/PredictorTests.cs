using System.Text.Json;
using DeepLabTorch.Inference;
using DeepLabTorch.Extensions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using static DeepLabTorch.Tests.Inference.InferenceTestUtil;

namespace DeepLabTorch.Tests.Inference;

public class PredictorTests
{
    private static Tensor Image(int n, int h, int w, int seed = 11) => RandomTensor(new long[] { n, 3, h, w }, seed);

    [Fact]
    public void PlainPredictReturnsTheModelsLogitsAtInputSize()
    {
        using var net = new TinyNet(5);
        using var x = Image(2, 9, 13);
        using var p = new Predictor(net).Logits(x);
        using var direct = net.forward(x);
        Assert.Equal(new long[] { 2, 5, 9, 13 }, p.shape);
        Assert.True(p.allclose(direct, 0, 1e-6));
    }

    [Fact]
    public void SingleScaleWithoutFlipEqualsPlainPredict()
    {
        using var net = new TinyNet(4);
        using var x = Image(1, 10, 12);
        using var plain = new Predictor(net).Logits(x);
        using var tta = new Predictor(net, new PredictOptions { Scales = new[] { 1.0 }, Flip = false }).Logits(x);
        Assert.True(plain.Equals(tta));
    }

    [Fact]
    public void FlipAveragesTheMirroredPass()
    {
        using var net = new TinyNet(3);
        using var x = Image(1, 8, 11);
        using var got = new Predictor(net, new PredictOptions { Flip = true }).Logits(x);
        // By hand: (f(x) + mirror(f(mirror(x)))) / 2.
        using var a = net.forward(x);
        using var xf = x.flip(3);
        using var bf = net.forward(xf);
        using var b = bf.flip(3);
        using var sum = a + b;
        using var want = sum / 2;
        Assert.True(got.allclose(want, 0, 1e-6));
        using var plain = new Predictor(net).Logits(x);
        Assert.False(got.allclose(plain, 0, 1e-4), "the mirrored pass must change a position-dependent network's output");
    }

    [Fact]
    public void SlidingWindowsOfAPointwiseNetworkEqualTheWholeImage()
    {
        using var net = new PointwiseNet(3);
        using var x = Image(2, 21, 30);
        using var whole = new Predictor(net).Logits(x);
        using var slid = new Predictor(net, new PredictOptions { WindowSize = 8, WindowOverlap = 0.25 }).Logits(x);
        Assert.Equal(whole.shape, slid.shape);
        Assert.True(slid.allclose(whole, 1e-5, 1e-5));
        // A window bigger than the image pads with zeros, which a pointwise network never sees in the crop.
        using var big = new Predictor(net, new PredictOptions { WindowSize = 40 }).Logits(x);
        Assert.True(big.allclose(whole, 1e-5, 1e-5));
    }

    [Fact]
    public void WindowOriginsCoverTheAxisAndEndFlush()
    {
        Assert.Equal(new long[] { 0, 6, 12, 13 }, Predictor.Starts(21, 8, 6).ToArray());
        Assert.Equal(new long[] { 0 }, Predictor.Starts(8, 8, 6).ToArray());
        Assert.Equal(new long[] { 0, 2 }, Predictor.Starts(10, 8, 6).ToArray());
    }

    [Fact]
    public void ResizeShortBringsLogitsBackToTheOriginalSize()
    {
        using var net = new TinyNet(2);
        using var x = Image(1, 12, 20);
        using var y = new Predictor(net, new PredictOptions { ResizeShort = 6 }).Logits(x);
        Assert.Equal(new long[] { 1, 2, 12, 20 }, y.shape);
        Assert.Equal((6L, 10L), Predictor.ResizedShort(12, 20, 6));
        Assert.Equal((13L, 8L), Predictor.ResizedShort(33, 20, 8));
    }

    [Fact]
    public void LogitsCanBeChangedInPlaceAfterInference()
    {
        using var net = new TinyNet(2);
        using var x = Image(1, 6, 6);
        using var y = new Predictor(net).Logits(x);
        y.add_(1.0); // an inference tensor would throw here
        Assert.Equal(new long[] { 1, 2, 6, 6 }, y.shape);
    }

    [Fact]
    public void BadOptionsAreUserErrors()
    {
        Assert.Throws<UserException>(() => new PredictOptions { Scales = Array.Empty<double>() }.Validate());
        Assert.Throws<UserException>(() => new PredictOptions { Scales = new[] { 0.0 } }.Validate());
        Assert.Throws<UserException>(() => new PredictOptions { WindowOverlap = 1 }.Validate());
        Assert.Throws<UserException>(() => new PredictOptions { ResizeShort = 0 }.Validate());
        using var net = new TinyNet(2);
        using var wrong = zeros(1, 1, 4, 4);
        Assert.Throws<ArgumentException>(() => new Predictor(net).Logits(wrong));
    }

    /// <summary>Every TTA path against PyTorch running the same weights through tests/reference/infer_predict.py.</summary>
    [LinuxFact(LinuxOnly.Python)]
    public void MatchesPyTorchForScalesFlipResizeAndWindows()
    {
        var dir = TempDir("predict");
        try
        {
            using var net = new TinyNet(3, seed: 21);
            using var x = Image(1, 13, 18, seed: 5);
            NpyWriter.Write(Path.Combine(dir, "x.npy"), x);
            NpyWriter.Write(Path.Combine(dir, "w1.npy"), net.conv1.weight);
            NpyWriter.Write(Path.Combine(dir, "b1.npy"), net.conv1.bias!);
            NpyWriter.Write(Path.Combine(dir, "w2.npy"), net.conv2.weight);
            NpyWriter.Write(Path.Combine(dir, "b2.npy"), net.conv2.bias!);
            var cases = new (string Name, PredictOptions Options)[]
            {
                ("plain", new PredictOptions()),
                ("scales", new PredictOptions { Scales = new[] { 0.5, 1.0, 1.75 } }),
                ("scales_flip", new PredictOptions { Scales = new[] { 0.75, 1.25 }, Flip = true }),
                ("resize", new PredictOptions { ResizeShort = 9 }),
                ("resize_flip", new PredictOptions { ResizeShort = 20, Flip = true, Scales = new[] { 1.0, 0.5 } }),
                ("window", new PredictOptions { WindowSize = 8, WindowOverlap = 0.5 }),
                ("window_scales", new PredictOptions { WindowSize = 10, Scales = new[] { 0.5, 1.5 }, Flip = true }),
            };
            var json = JsonSerializer.Serialize(cases.Select(c => new Dictionary<string, object?>
            {
                ["name"] = c.Name, ["scales"] = c.Options.Scales, ["flip"] = c.Options.Flip,
                ["resize_short"] = c.Options.ResizeShort, ["window"] = c.Options.WindowSize, ["overlap"] = c.Options.WindowOverlap,
            }));
            File.WriteAllText(Path.Combine(dir, "cases.json"), json);
            Python("infer_predict.py", dir);
            foreach (var (name, options) in cases)
            {
                using var got = new Predictor(net, options).Logits(x);
                var (shape, want) = ReadNpy(Path.Combine(dir, name + ".npy"));
                Assert.Equal(shape, got.shape);
                var mine = got.ToArray<float>();
                double maxDiff = 0;
                for (int i = 0; i < mine.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(mine[i] - want[i]));
                Assert.True(maxDiff < 1e-4, $"{name}: max |ours - PyTorch| = {maxDiff}");
            }
        }
        finally { Directory.Delete(dir, true); }
    }
}

/// <summary>eval and predict share one test-time augmentation: the same model, scales and flip give the same logits.</summary>
public class SharedTestTimeAugmentationTests
{
    [Fact]
    public void EvalAndPredictAgreeOnScalesAndFlip()
    {
        TorchSharp.torch.manual_seed(11);
        using var model = new DeepLabTorch.Models.DeepLabV3Plus(new DeepLabTorch.Models.ModelConfig("mobilenet", 16, 3));
        model.eval();
        using var x = TorchSharp.torch.randn(1, 3, 45, 53);
        var scales = new[] { 0.5, 1.0, 1.25 };
        using var fromPredict = new DeepLabTorch.Inference.Predictor(model, new DeepLabTorch.Inference.PredictOptions { Scales = scales, Flip = true }).Logits(x);
        using var _ = TorchSharp.torch.inference_mode();
        using var fromEval = DeepLabTorch.Evaluation.SegmentationEvaluator.Predict(model, x, scales, flip: true);
        using var plain = model.forward(x);
        Assert.Equal(fromEval.shape, fromPredict.shape);
        using var diff = (fromEval - fromPredict).abs().max();
        Assert.True(diff.item<float>() < 1e-5f, $"eval and predict differ by {diff.item<float>()}");
        using var moved = (fromEval - plain).abs().max();
        Assert.True(moved.item<float>() > 1e-3f, "the augmentation changed nothing: the comparison would prove nothing");
    }
}

/// <summary>--precision bf16: the network runs in bfloat16, the logits come back float32 and close to float32's.</summary>
public class BFloat16InferenceTests
{
    [Fact]
    public void BFloat16LogitsAreFloat32AndCloseToTheFloat32Model()
    {
        TorchSharp.torch.manual_seed(21);
        using var f32 = new DeepLabTorch.Models.DeepLabV3Plus(new DeepLabTorch.Models.ModelConfig("mobilenet", 16, 3));
        using var bf16 = new DeepLabTorch.Models.DeepLabV3Plus(new DeepLabTorch.Models.ModelConfig("mobilenet", 16, 3));
        DeepLabTorch.Checkpoints.StateDictLoader.Load(bf16, DeepLabTorch.Extensions.ModuleExtensions.StateDictInOrder(f32), "the float32 model");
        DeepLabTorch.Models.ModelLoader.PrepareForInference(f32, TorchSharp.torch.CPU);
        DeepLabTorch.Models.ModelLoader.PrepareForInference(bf16, TorchSharp.torch.CPU, precision: DeepLabTorch.Models.Precision.BFloat16);
        Assert.All(bf16.parameters(), p => Assert.Equal(TorchSharp.torch.ScalarType.BFloat16, p.dtype));
        using var x = TorchSharp.torch.randn(1, 3, 65, 81);
        // The model itself upsamples its logits in float32 in eval mode (as PyTorch's autocast does).
        using (TorchSharp.torch.no_grad())
        using (var xb = x.to(TorchSharp.torch.ScalarType.BFloat16))
        using (var raw = bf16.forward(xb))
            Assert.Equal(TorchSharp.torch.ScalarType.Float32, raw.dtype);
        using var a = new DeepLabTorch.Inference.Predictor(f32).Logits(x);
        using var b = new DeepLabTorch.Inference.Predictor(bf16).Logits(x);
        Assert.Equal(TorchSharp.torch.ScalarType.Float32, b.dtype);
        using var diff = (a - b).abs().max();
        using var scale = a.abs().max();
        // bfloat16 keeps 8 bits of mantissa; through ~50 layers of an untrained (badly conditioned) network
        // that reaches ~10% of the logit scale at the worst pixel. A trained model's classes agree far
        // better: on the synthetic set, eval's mIoU moved by 0.15 points (docs/performance.md).
        Assert.True(diff.item<float>() < 0.2f * scale.item<float>(), $"bf16 logits differ by {diff.item<float>()} (scale {scale.item<float>()})");
        using var same = a.argmax(1).eq(b.argmax(1)).to(TorchSharp.torch.ScalarType.Float32).mean();
        Assert.True(same.item<float>() > 0.9f, $"bf16 and float32 agree on only {same.item<float>():P1} of the pixels");
        Assert.True(diff.item<float>() > 0, "bf16 and float32 gave identical logits: the bf16 path did not run");
    }
}
