using DeepLabTorch.Inference;
using DeepLabTorch.Extensions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using static DeepLabTorch.Tests.Inference.InferenceTestUtil;

namespace DeepLabTorch.Tests.Inference;

/// <summary>Tensor.TotalCount is process-wide: these run alone, after the parallel tests.</summary>
[CollectionDefinition("Inference live-count", DisableParallelization = true)]
public class LiveCountCollection { }

[Collection("Inference live-count")]
public class LeakTests
{
    /// <summary>Lets finalizers of other tests' garbage run, so they do not move the count mid-test.</summary>
    private static void Settle()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    private static Tensor Image(int n, int h, int w, int seed = 11) => RandomTensor(new long[] { n, 3, h, w }, seed);

    [Fact]
    public void PredictorFreesItsTemporaries()
    {
        using var net = new TinyNet(3);
        using var x = Image(1, 10, 10);
        var predictor = new Predictor(net, new PredictOptions { Scales = new[] { 0.75, 1.0, 1.5 }, Flip = true, WindowSize = 8 });
        using (predictor.Logits(x)) { }
        Settle();
        long before = Tensor.TotalCount;
        using (predictor.Logits(x)) { }
        Settle();
        Assert.Equal(before, Tensor.TotalCount);
    }

    [Fact]
    public void MatterAndBackgroundsFreeTheirTemporaries()
    {
        using var net = new TinyNet(2);
        var rgb = TestImage(12, 14);
        using var matter = new Matter(new Predictor(net), new MatteOptions { EdgeRadius = 2, Smoothing = 0.5 });
        using var blur = new BackgroundRenderer(new Background.Blur(2), _ => throw new InvalidOperationException());
        matter.Process(rgb, 12, 14, blur);
        Settle();
        long before = Tensor.TotalCount;
        for (int i = 0; i < 3; i++) matter.Process(rgb, 12, 14, blur);
        Settle();
        Assert.Equal(before, Tensor.TotalCount);
    }

    [Fact]
    public void PoissonBlendFreesItsTemporaries()
    {
        using var net = new TinyNet(2);
        var rgb = TestImage(16, 18);
        using var matter = new Matter(new Predictor(net), new MatteOptions { EdgeRadius = 0, Blend = BlendMode.Poisson, Poisson = new PoissonOptions { BandRadius = 2 } });
        using var colour = new BackgroundRenderer(new Background.Colour(20, 200, 40), _ => throw new InvalidOperationException());
        using var fg = Image(1, 16, 18).sigmoid();
        using var bg = Image(1, 16, 18, seed: 12).sigmoid();
        using var alpha = Image(1, 16, 18, seed: 13).narrow(1, 0, 1).sigmoid();
        matter.Process(rgb, 16, 18, colour);
        using (PoissonBlend.Composite(fg, bg, alpha)) { }
        Settle();
        long before = Tensor.TotalCount;
        for (int i = 0; i < 3; i++)
        {
            matter.Process(rgb, 16, 18, colour);
            using (PoissonBlend.CompositeWithReport(fg, bg, alpha, new PoissonOptions { BandRadius = 3 }, out var report))
                Assert.True(report.BandPixels > 0);
        }
        Settle();
        Assert.Equal(before, Tensor.TotalCount);
    }
}
