using DeepLabTorch.Cli;
using DeepLabTorch.Data;
using DeepLabTorch.Evaluation;
using DeepLabTorch.Tests.Training;
using DeepLabTorch.Extensions;
using TorchSharp;
using Xunit;

namespace DeepLabTorch.Tests.Evaluation;

public class ScoreAndPredictTests : IDisposable
{
    private readonly string _dir = ReferenceScripts.TempDir("score");

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void ScoreVerbCountsHandMadePngs()
    {
        var pred = Directory.CreateDirectory(Path.Combine(_dir, "pred")).FullName;
        var gt = Directory.CreateDirectory(Path.Combine(_dir, "gt")).FullName;
        // Same case as the hand-built confusion matrix test: gt 0 0 1 1 255 2, pred 0 1 1 1 2 0 (as a 2x3 image).
        ImageCodec.WritePalettePng(Path.Combine(gt, "a.png"), new byte[] { 0, 0, 1, 1, 255, 2 }, 2, 3);
        ImageCodec.WritePalettePng(Path.Combine(pred, "a.png"), new byte[] { 0, 1, 1, 1, 2, 0 }, 2, 3);
        var stdout = new StringWriter();
        var original = Console.Out;
        int code;
        lock (ConsoleLock.Gate)
        {
            Console.SetOut(stdout);
            try { code = Program.Run(new[] { "score", "--pred", pred, "--gt", gt, "--num-classes", "3", "--class-names", "bg,cat,dog", "--json" }, stdout, new StringWriter()); }
            finally { Console.SetOut(original); }
        }
        Assert.Equal(0, code);
        var r = System.Text.Json.JsonDocument.Parse(stdout.ToString()).RootElement;
        Assert.Equal(1.0 / 3, r.GetProperty("miou").GetDouble(), 12);
        Assert.Equal(0.6, r.GetProperty("pixel_acc").GetDouble(), 12);
        Assert.Equal(0.4, r.GetProperty("fwiou").GetDouble(), 12);
        Assert.Equal(2.0 / 3, r.GetProperty("class_iou").GetProperty("cat").GetDouble(), 12);
    }

    [Fact]
    public void ScoreVerbNamesAPredictionOfTheWrongSize()
    {
        var pred = Directory.CreateDirectory(Path.Combine(_dir, "pred2")).FullName;
        var gt = Directory.CreateDirectory(Path.Combine(_dir, "gt2")).FullName;
        ImageCodec.WritePalettePng(Path.Combine(gt, "b.png"), new byte[6], 2, 3);
        ImageCodec.WritePalettePng(Path.Combine(pred, "b.png"), new byte[4], 2, 2);
        var err = new StringWriter();
        var code = Program.Run(new[] { "score", "--pred", pred, "--gt", gt, "--num-classes", "3" }, new StringWriter(), err);
        Assert.Equal(2, code);
        Assert.Contains(Path.Combine(pred, "b.png"), err.ToString());
        Assert.Contains("2x2", err.ToString());
    }

    /// <summary>A per-pixel linear classifier: flip-equivariant, so flip averaging must equal the plain softmax.</summary>
    private sealed class PixelLinear : torch.nn.Module<torch.Tensor, torch.Tensor>
    {
        private readonly torch.Tensor _w = torch.tensor(new float[] { 1, -2, 0.5f, -1, 0.25f, 2 }, new long[] { 2, 3, 1, 1 });
        public PixelLinear() : base("pixel") { }
        public override torch.Tensor forward(torch.Tensor x) => torch.nn.functional.conv2d(x, _w);
    }

    [Fact]
    public void FlipAveragingOfAnEquivariantModelIsItsLogitsAndScalesKeepTheSize()
    {
        using var scope = torch.NewDisposeScope();
        var model = new PixelLinear();
        torch.manual_seed(3);
        var x = torch.randn(1, 3, 10, 14);
        var plain = SegmentationEvaluator.Predict(model, x, new[] { 1.0 }, false);
        Assert.Equal(new long[] { 1, 2, 10, 14 }, plain.shape);
        // A per-pixel model commutes with mirroring, so the mean of its logits and the mirrored pass's is its logits.
        var flipped = SegmentationEvaluator.Predict(model, x, new[] { 1.0 }, true);
        Assert.True(flipped.allclose(plain, 1e-5, 1e-6));
        var multi = SegmentationEvaluator.Predict(model, x, new[] { 0.5, 1.5 }, true);
        Assert.Equal(new long[] { 1, 2, 10, 14 }, multi.shape);
        // Averaged logits (not probabilities): the mean of the passes computed here by hand.
        var half = torch.nn.functional.interpolate(model.call(torch.nn.functional.interpolate(x, new long[] { 5, 7 }, mode: torch.InterpolationMode.Bilinear, align_corners: true)),
            new long[] { 10, 14 }, mode: torch.InterpolationMode.Bilinear, align_corners: true);
        var big = torch.nn.functional.interpolate(model.call(torch.nn.functional.interpolate(x, new long[] { 15, 21 }, mode: torch.InterpolationMode.Bilinear, align_corners: true)),
            new long[] { 10, 14 }, mode: torch.InterpolationMode.Bilinear, align_corners: true);
        Assert.True(multi.allclose((half + big) / 2, 1e-4, 1e-5));
    }
}

internal static class ConsoleLock
{
    public static readonly object Gate = new();
}
