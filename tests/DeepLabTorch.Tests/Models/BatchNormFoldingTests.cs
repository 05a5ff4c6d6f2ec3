using DeepLabTorch.Models;
using TorchSharp;
using BatchNorm2d = DeepLabTorch.Models.BatchNorm2d;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Models;

/// <summary>BatchNorm folded into the convolutions: same logits as the unfolded model, no BatchNorm left doing work.</summary>
[Collection("Models")]
public class BatchNormFoldingTests
{
    /// <summary>
    /// Freshly initialised BatchNorms are the identity (γ=1, β=0, μ=0, σ²=1), which would fold into nothing
    /// and hide a wrong formula; give every one distinct statistics and affine parameters.
    /// </summary>
    private static void RandomiseBatchNorms(nn.Module model)
    {
        using var _ = no_grad();
        foreach (var m in model.modules().OfType<BatchNorm2d>())
        {
            using var scope = NewDisposeScope();
            long c = m.running_mean!.size(0);
            m.running_mean.copy_(randn(c) * 0.2);
            m.running_var!.copy_(rand(c) + 0.5);
            m.weight!.copy_(rand(c) + 0.5);
            m.bias!.copy_(randn(c) * 0.1);
        }
    }

    public static TheoryData<string> CatalogueBackbones()
    {
        var data = new TheoryData<string>();
        foreach (var name in ModelCatalog.Names) data.Add(name);
        return data;
    }

    [Theory]
    [MemberData(nameof(CatalogueBackbones))]
    public void FoldedLogitsEqualUnfolded(string backbone)
    {
        manual_seed(11);
        using var model = ModelFactory.Create(new ModelConfig(backbone, 16, 5));
        RandomiseBatchNorms(model);
        model.eval();
        int batchNorms = model.modules().OfType<BatchNorm2d>().Count();
        using var x = randn(1, 3, 33, 33);
        using var _ = inference_mode();
        using var before = model.forward(x);

        int folded = BatchNormFolding.Fold(model);
        using var after = model.forward(x);

        Assert.Equal(batchNorms, folded);
        Assert.False(BatchNormFolding.HasActiveBatchNorm(model));
        double scale = before.abs().max().item<float>();
        double diff = (after - before).abs().max().item<float>();
        Assert.True(scale > 1e-3, $"{backbone}: logits are degenerate (max |logit| {scale})");
        Assert.True(diff <= 1e-4 * scale, $"{backbone}: folded logits differ by {diff}, logit scale {scale}");
    }

    /// <summary>The fold itself, on one conv with a bias: W' and b' against the formula computed by hand.</summary>
    [Fact]
    public void FoldsOneConvWithBias()
    {
        manual_seed(3);
        using var conv = nn.Conv2d(2, 3, 3, padding: 1, bias: true);
        using var bn = new BatchNorm2d(3);
        using var seq = nn.Sequential(conv, bn);
        RandomiseBatchNorms(seq);
        seq.eval();
        using var x = randn(2, 2, 5, 5);
        using var _ = no_grad();
        using var expected = seq.forward(x);
        var (w, b) = BatchNormFolding.FoldedParameters(conv, bn);
        using (w)
        using (b)
        using (var direct = nn.functional.conv2d(x, w, b, padding: new long[] { 1, 1 }))
            Assert.True(direct.allclose(expected, 1e-5, 1e-5));
        Assert.Equal(1, BatchNormFolding.Fold(seq));
        using var folded = seq.forward(x);
        Assert.True(folded.allclose(expected, 1e-5, 1e-5));
        // Folding twice must not fold again: the BatchNorm is already the identity.
        Assert.Equal(0, BatchNormFolding.Fold(seq));
        using var again = seq.forward(x);
        Assert.True(again.allclose(expected, 1e-5, 1e-5));
    }

    [Fact]
    public void RefusesTrainModeAndBatchNormsWithoutAConvBefore()
    {
        using var model = ModelFactory.Create(new ModelConfig("mobilenet", 16, 3));
        Assert.Throws<InvalidOperationException>(() => BatchNormFolding.Fold(model));
        using var seq = nn.Sequential(nn.ReLU(), new BatchNorm2d(3));
        seq.eval();
        Assert.Contains("does not follow a convolution", Assert.Throws<InvalidOperationException>(() => BatchNormFolding.Fold(seq)).Message);
        model.eval();
        BatchNormFolding.Fold(model);
        model.train();
        using var x = randn(2, 3, 33, 33);
        Assert.Throws<InvalidOperationException>(() => model.forward(x).Dispose());
    }
}
