using Xunit;
using static DeepLabTorch.Torch.torch;
using static DeepLabTorch.Torch.Tests.TestUtil;
using F = DeepLabTorch.Torch.torch.nn.functional;

namespace DeepLabTorch.Torch.Tests;

public class FunctionalTests
{
    private static Tensor Range(int n, params long[] shape) => arange(1, n + 1, 1, ScalarType.Float64).reshape(shape);

    [Fact]
    public void Conv2dPoolsAndActivationsMatchHandValues()
    {
        using var scope = NewDisposeScope();
        var x = Range(9, 1, 1, 3, 3);
        var y = F.conv2d(x, ones(new long[] { 1, 1, 2, 2 }, ScalarType.Float64), T(new[] { 0.5 }, 1));
        Assert.Equal(new[] { 12.5, 16.5, 24.5, 28.5 }, y.ToArray<double>());
        // padding 1, stride 2: corners see a 2x2 window, the centre the full 3x3.
        var y2 = F.conv2d(x, ones(new long[] { 1, 1, 3, 3 }, ScalarType.Float64), null, (2, 2), (1, 1));
        Assert.Equal(new double[] { 12, 16, 24, 28 }, y2.ToArray<double>());
        // dilation 2 on 5x5 with a 2x2 kernel of ones picks x[i,j]+x[i,j+2]+x[i+2,j]+x[i+2,j+2].
        var x5 = Range(25, 1, 1, 5, 5);
        var yd = F.conv2d(x5, ones(new long[] { 1, 1, 2, 2 }, ScalarType.Float64), null, null, null, (2, 2));
        Assert.Equal(1 + 3 + 11 + 13, yd.ToArray<double>()[0]);
        // groups 2: each output channel sees only its own input channel.
        var xg = cat(new[] { ones(new long[] { 1, 1, 2, 2 }, ScalarType.Float64), full(new long[] { 1, 1, 2, 2 }, 10.0, ScalarType.Float64) }, 1);
        var yg = F.conv2d(xg, ones(new long[] { 2, 1, 1, 1 }, ScalarType.Float64), null, null, null, null, 2);
        Assert.Equal(new double[] { 1, 1, 1, 1, 10, 10, 10, 10 }, yg.ToArray<double>());

        var x4 = arange(0, 16, 1, ScalarType.Float64).reshape(1, 1, 4, 4);
        Assert.Equal(new double[] { 5, 7, 13, 15 }, F.max_pool2d(x4, (2, 2)).ToArray<double>());
        Assert.Equal(new double[] { 2.5, 4.5, 10.5, 12.5 }, F.avg_pool2d(x4, (2, 2)).ToArray<double>());
        Assert.Equal(7.5, F.adaptive_avg_pool2d(x4, (1, 1)).item<double>());
        // 4 columns into 3 bins: [0,2), [1,3), [2,4) → means of columns.
        Assert.Equal(new double[] { 6.5, 7.5, 8.5 }, F.adaptive_avg_pool2d(x4, (1, 3)).ToArray<double>());

        var v = T(new double[] { -3, -0.5, 2, 7 }, 4);
        Assert.Equal(new double[] { 0, 0, 2, 6 }, F.relu6(v).ToArray<double>());
        AllNear(new double[] { -0.3, -0.05, 2, 7 }, F.leaky_relu(v, 0.1).ToArray<double>(), 1e-15);
        var sm = F.softmax(T(new double[] { 1, 2, 3 }, 3), 0).ToArray<double>();
        var z = Math.Exp(1) + Math.Exp(2) + Math.Exp(3);
        AllNear(new[] { Math.Exp(1) / z, Math.Exp(2) / z, Math.Exp(3) / z }, sm, 1e-12);
        AllNear(sm.Select(v => Math.Log(v)).ToArray(), F.log_softmax(T(new double[] { 1, 2, 3 }, 3), 0).ToArray<double>(), 1e-12);
    }

    [Fact]
    public void InterpolateMatchesHandValues()
    {
        using var scope = NewDisposeScope();
        var x = T(new double[] { 0, 1, 2, 3 }, 1, 1, 2, 2);
        var ac = F.interpolate(x, (3, 3), nn.InterpolationMode.Bilinear, align_corners: true);
        Assert.Equal(new[] { 0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3 }, ac.ToArray<double>());
        // half-pixel centres: source coordinate (d + 0.5) / 2 - 0.5, clamped at the border.
        var w = new[] { 0, 0.25, 0.75, 1 };
        var expected = new List<double>();
        for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) expected.Add(2 * w[i] + w[j]);
        AllNear(expected.ToArray(), F.interpolate(x, (4, 4), nn.InterpolationMode.Bilinear).ToArray<double>(), 1e-12);
        var nearest = F.interpolate(x, (4, 4)).ToArray<double>();
        Assert.Equal(new double[] { 0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3 }, nearest);
    }

    [Fact]
    public void PadDropoutAndBatchNormMatchHandValues()
    {
        using var scope = NewDisposeScope();
        var x = T(new double[] { 1, 2, 3 }, 1, 1, 3);
        Assert.Equal(new double[] { 3, 2, 1, 2, 3, 2 }, F.pad(x, new long[] { 2, 1 }, nn.PaddingModes.Reflect).ToArray<double>());
        Assert.Equal(new double[] { 9, 1, 2, 3, 9, 9 }, F.pad(x, new long[] { 1, 2 }, nn.PaddingModes.Constant, 9).ToArray<double>());
        Assert.Equal(new double[] { 1, 1, 2, 3, 3 }, F.pad(x, new long[] { 1, 1 }, nn.PaddingModes.Replicate).ToArray<double>());

        var d = F.dropout(ones(new long[] { 10000 }, ScalarType.Float64), 0.5, training: true).ToArray<double>();
        Assert.All(d, v => Assert.True(v == 0 || v == 2));
        Assert.InRange(d.Count(v => v == 0), 4500, 5500);
        Assert.All(F.dropout(ones(new long[] { 100 }, ScalarType.Float64), 0.5, training: false).ToArray<double>(), v => Assert.Equal(1, v));

        // Train mode: batch statistics (mean 2.5, biased var 1.25); running stats take 10% of
        // the batch mean and of the unbiased variance (5/3).
        var input = T(new double[] { 1, 2, 3, 4 }, 2, 1, 1, 2);
        var rm = zeros(new long[] { 1 }, ScalarType.Float64);
        var rv = ones(new long[] { 1 }, ScalarType.Float64);
        var y = F.batch_norm(input, rm, rv, T(new double[] { 2 }, 1), T(new double[] { 1 }, 1), training: true, momentum: 0.1, eps: 0);
        var s = Math.Sqrt(1.25);
        AllNear(new[] { 2 * -1.5 / s + 1, 2 * -0.5 / s + 1, 2 * 0.5 / s + 1, 2 * 1.5 / s + 1 }, y.ToArray<double>(), 1e-12);
        Near(0.25, rm.item<double>(), 1e-12, "running_mean");
        Near(0.9 + 0.1 * 5.0 / 3.0, rv.item<double>(), 1e-12, "running_var");
        // Eval mode uses the running stats.
        var ye = F.batch_norm(input, rm, rv, null, null, training: false, eps: 0);
        AllNear(new[] { 1, 2, 3, 4 }.Select(v => (v - 0.25) / Math.Sqrt(0.9 + 0.5 / 3)).ToArray(), ye.ToArray<double>(), 1e-12);
    }

    [Fact]
    public void CrossEntropyIgnoresLabelAndWeightsClasses()
    {
        using var scope = NewDisposeScope();
        var logits = T(new double[] { 1, 2, 3, 1, 0, 0, 5, 5, 5 }, 3, 3);
        var target = tensor(new long[] { 2, 0, 255 });
        double Lse(double a, double b, double c) => Math.Log(Math.Exp(a) + Math.Exp(b) + Math.Exp(c));
        var l0 = Lse(1, 2, 3) - 3;
        var l1 = Lse(1, 0, 0) - 1;
        Near((l0 + l1) / 2, F.cross_entropy(logits, target, ignore_index: 255).item<double>(), 1e-12, "mean");
        Near(l0 + l1, F.cross_entropy(logits, target, ignore_index: 255, reduction: nn.Reduction.Sum).item<double>(), 1e-12, "sum");
        var w = T(new double[] { 1, 2, 0.5 }, 3);
        Near((0.5 * l0 + 1 * l1) / 1.5, F.cross_entropy(logits, target, w, 255).item<double>(), 1e-12, "weighted");
        // The same through log_softmax + nll_loss, and on a segmentation-shaped (N,C,H,W) input.
        Near((l0 + l1) / 2, F.nll_loss(F.log_softmax(logits, 1), target, ignore_index: 255).item<double>(), 1e-12, "nll");
        var seg = logits.t().reshape(1, 3, 1, 3);
        Near((l0 + l1) / 2, F.cross_entropy(seg, target.reshape(1, 1, 3), ignore_index: 255).item<double>(), 1e-12, "nchw");
    }

    // ---------------------------------------------------------------- finite-difference gradient checks
    private static Tensor Weighted(Tensor y, long seed)
    {
        manual_seed(seed);
        var r = randn(y.shape, ScalarType.Float64);
        return (y * r).sum();
    }

    [Fact]
    public void GradCheckConv2dStrideDilationGroups()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        var x = randn(new long[] { 1, 4, 7, 7 }, ScalarType.Float64, requires_grad: true);
        var w = randn(new long[] { 4, 2, 3, 3 }, ScalarType.Float64, requires_grad: true);
        var b = randn(new long[] { 4 }, ScalarType.Float64);
        GradCheck(xx => Weighted(F.conv2d(xx, w, b, (2, 2), (1, 1), (1, 1), 2), 10), x, what: "conv2d stride/groups dx");
        GradCheck(ww => Weighted(F.conv2d(x, ww, b, (1, 1), (2, 2), (2, 2), 2), 11), w, what: "conv2d dilation dw");
    }

    [Fact]
    public void GradCheckBatchNormTrainAndEval()
    {
        using var scope = NewDisposeScope();
        manual_seed(2);
        var x = randn(new long[] { 3, 2, 2, 2 }, ScalarType.Float64, requires_grad: true);
        var g = T(new double[] { 1.5, 0.7 }, 2);
        var b = T(new double[] { 0.1, -0.2 }, 2);
        GradCheck(xx => Weighted(F.batch_norm(xx, null, null, g, b, training: true), 12), x, what: "batch_norm train dx");
        var wgt = T(new double[] { 1.5, 0.7 }, 2).requires_grad_();
        GradCheck(gg => Weighted(F.batch_norm(x, null, null, gg, b, training: true), 13), wgt, what: "batch_norm train dweight");
        var rm = T(new double[] { 0.3, -0.1 }, 2);
        var rv = T(new double[] { 2.0, 0.5 }, 2);
        GradCheck(xx => Weighted(F.batch_norm(xx, rm, rv, g, b, training: false), 14), x, what: "batch_norm eval dx");
    }

    [Fact]
    public void GradCheckInterpolateAndAdaptivePool()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var x = randn(new long[] { 1, 2, 3, 4 }, ScalarType.Float64, requires_grad: true);
        GradCheck(xx => Weighted(F.interpolate(xx, (5, 7), nn.InterpolationMode.Bilinear, true), 15), x, what: "bilinear align_corners");
        GradCheck(xx => Weighted(F.interpolate(xx, (5, 7), nn.InterpolationMode.Bilinear, false), 16), x, what: "bilinear half-pixel");
        var y = randn(new long[] { 1, 2, 5, 7 }, ScalarType.Float64, requires_grad: true);
        GradCheck(yy => Weighted(F.adaptive_avg_pool2d(yy, (2, 3)), 17), y, what: "adaptive_avg_pool2d");
    }

    [Fact]
    public void GradCheckCrossEntropyWithIgnoreAndWeights()
    {
        using var scope = NewDisposeScope();
        manual_seed(4);
        var logits = randn(new long[] { 2, 3, 2, 3 }, ScalarType.Float64, requires_grad: true);
        var target = tensor(new long[] { 0, 1, 255, 2, 2, 1, 255, 0, 1, 1, 2, 0 }, new long[] { 2, 2, 3 });
        var w = T(new double[] { 0.5, 2, 1 }, 3);
        GradCheck(l => F.cross_entropy(l, target, w, 255), logits, what: "cross_entropy");
        // Ignored pixels get exactly zero gradient.
        logits.grad = null;
        F.cross_entropy(logits, target, w, 255).backward();
        var grad = logits.grad!.permute(0, 2, 3, 1).reshape(12, 3).ToArray<double>();
        Assert.All(new[] { 2, 6 }, pixel => Assert.All(Enumerable.Range(0, 3), c => Assert.Equal(0.0, grad[pixel * 3 + c])));
    }
}
