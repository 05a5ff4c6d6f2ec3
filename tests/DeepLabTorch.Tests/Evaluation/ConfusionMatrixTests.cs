using DeepLabTorch.Evaluation;
using DeepLabTorch.Extensions;
using TorchSharp;
using Xunit;

namespace DeepLabTorch.Tests.Evaluation;

public class ConfusionMatrixTests
{
    private static torch.Tensor L(params long[] v) => torch.tensor(v, new long[] { 1, v.Length });

    [Fact]
    public void CountsAndMetricsOnAHandBuiltCaseWithTheIgnoreLabel()
    {
        // gt:   0 0 1 1 255 2
        // pred: 0 1 1 1  2  0   -> valid pairs (0,0) (0,1) (1,1) (1,1) (2,0)
        using var cm = new ConfusionMatrix(3);
        using (var p = L(0, 1, 1, 1, 2, 0))
        using (var t = L(0, 0, 1, 1, 255, 2))
            cm.Update(p, t);
        Assert.Equal(new long[] { 1, 1, 0, 0, 2, 0, 1, 0, 0 }, cm.Counts());
        var m = cm.Compute(new[] { "bg", "cat", "dog" });
        Assert.Equal(0.6, m.PixelAccuracy, 12);
        Assert.Equal(0.5, m.MeanClassAccuracy, 12);                 // (1/2 + 2/2 + 0/1) / 3
        Assert.Equal(new[] { 1.0 / 3, 2.0 / 3, 0.0 }, m.ClassIoU);
        Assert.Equal(1.0 / 3, m.MeanIoU, 12);
        Assert.Equal(0.4, m.FrequencyWeightedIoU, 12);              // 2/5*1/3 + 2/5*2/3 + 1/5*0
        Assert.Equal(new long[] { 2, 2, 1 }, m.GroundTruthPixels);
        // F1 = 2TP / (GT + predicted): bg 2*1/(2+2), cat 2*2/(2+3), dog 0/(1+0).
        Assert.Equal(new[] { 0.5, 0.8, 0.0 }, m.ClassF1);
        Assert.Equal(1.3 / 3, m.MeanF1, 12);
        Assert.Equal(0.4, m.MeanF1WithoutBackground, 12);
        Assert.Contains("dog", m.FormatTable());
        Assert.Contains("mean F1 43.33", m.FormatTable());
    }

    [Fact]
    public void AbsentClassesAreNaNAndSkippedButAPredictedAbsentClassScoresZero()
    {
        // 4 classes: class 2 never occurs anywhere (NaN), class 3 is predicted once but never in the ground truth (IoU 0).
        using var cm = new ConfusionMatrix(4);
        using (var p = L(0, 3, 1, 1))
        using (var t = L(0, 0, 1, 1))
            cm.Update(p, t);
        var m = cm.Compute();
        Assert.Equal(0.5, m.ClassIoU[0], 12);
        Assert.Equal(1.0, m.ClassIoU[1], 12);
        Assert.True(double.IsNaN(m.ClassIoU[2]));
        Assert.Equal(0.0, m.ClassIoU[3], 12);
        Assert.Equal(0.5, m.MeanIoU, 12);                           // NaN-mean of 0.5, 1, 0
        Assert.True(double.IsNaN(m.ClassAccuracy[2]));
        Assert.True(double.IsNaN(m.ClassAccuracy[3]));
        Assert.Equal(0.75, m.MeanClassAccuracy, 12);                // NaN-mean of 0.5, 1
        Assert.Equal(0.75, m.PixelAccuracy, 12);
        Assert.Equal(0.75, m.FrequencyWeightedIoU, 12);             // 0.5*0.5 + 0.5*1
        Assert.Contains("n/a", m.FormatTable());
        Assert.True(double.IsNaN(m.ClassF1[2]));                    // neither present nor predicted
        Assert.Equal(0.0, m.ClassF1[3], 12);
    }

    [Fact]
    public void StreamingUpdatesEqualOneUpdateAndResetClears()
    {
        var pred = new long[] { 0, 1, 2, 2, 1, 0, 0, 1 };
        var gt = new long[] { 0, 1, 2, 1, 255, 0, 2, 1 };
        using var whole = new ConfusionMatrix(3);
        using var parts = new ConfusionMatrix(3);
        using (var p = torch.tensor(pred, new long[] { 2, 2, 2 }))
        using (var t = torch.tensor(gt, new long[] { 2, 2, 2 }))
            whole.Update(p, t);
        for (var i = 0; i < 8; i += 2)
        {
            using var p = torch.tensor(pred[i..(i + 2)], new long[] { 1, 2 });
            using var t = torch.tensor(gt[i..(i + 2)], new long[] { 1, 2 });
            parts.Update(p, t);
        }
        Assert.Equal(whole.Counts(), parts.Counts());
        Assert.Equal(7, whole.Counts().Sum());

        // Byte-span updates (the score verb's path) agree with tensor updates.
        using var bytes = new ConfusionMatrix(3);
        bytes.Update(pred.Select(v => (byte)v).ToArray(), gt.Select(v => (byte)v).ToArray());
        Assert.Equal(whole.Counts(), bytes.Counts());

        whole.Reset();
        Assert.All(whole.Counts(), c => Assert.Equal(0, c));
        Assert.True(double.IsNaN(whole.Compute().MeanIoU));
    }

    [Fact]
    public void BadInputsGiveClearErrors()
    {
        using var cm = new ConfusionMatrix(3);
        using var p = L(0, 5);
        using var t = L(0, 1);
        var e = Assert.Throws<ArgumentException>(() => cm.Update(p, t));
        Assert.Contains("outside [0, 3)", e.Message);
        using var p2 = L(0, 1, 2);
        e = Assert.Throws<ArgumentException>(() => cm.Update(p2, t));
        Assert.Contains("shape", e.Message);
        Assert.Throws<ArgumentException>(() => cm.Update(new byte[] { 7 }, new byte[] { 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConfusionMatrix(0));
    }

    [Fact]
    public void NanMeanMatchesNumpy()
    {
        Assert.Equal(2.0, SegmentationMetrics.NanMean(new[] { 1.0, double.NaN, 3.0 }));
        Assert.True(double.IsNaN(SegmentationMetrics.NanMean(new[] { double.NaN })));
    }
}

/// <summary>Compares the process-wide live-tensor count, so it runs without parallel neighbours.</summary>
[Collection(LiveTensorCountCollection.Name)]
public class ConfusionMatrixLeakTests
{
    [Fact]
    public void UpdateLeaksNoTensorsAndAcceptsInt32AndByteInputs()
    {
        using var cm = new ConfusionMatrix(2);
        using var p = torch.tensor(new int[] { 0, 1, 1, 0 }, new long[] { 2, 2 });
        using var t = torch.tensor(new byte[] { 0, 1, 0, 0 }, new long[] { 2, 2 });
        cm.Update(p, t);
        var before = torch.Tensor.TotalCount;
        cm.Update(p, t);
        Assert.Equal(before, torch.Tensor.TotalCount);
        Assert.Equal(new long[] { 4, 2, 0, 2 }, cm.Counts());
    }
}
