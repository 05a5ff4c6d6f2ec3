using System.Globalization;
using DeepLabTorch.Inference;
using DeepLabTorch.Extensions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using static DeepLabTorch.Tests.Inference.InferenceTestUtil;

namespace DeepLabTorch.Tests.Inference;

public class OutputTests
{
    [LinuxFact(LinuxOnly.Python)]
    public void NpyLoadsInNumpyWithShapeDtypeAndValues()
    {
        var dir = TempDir("npy");
        try
        {
            // [C,H,W] = [3,2,4] with values 0.5·i − 3, so element (c,y,x) is 0.5·(8c + 4y + x) − 3.
            var values = Enumerable.Range(0, 24).Select(i => 0.5f * i - 3).ToArray();
            var path = Path.Combine(dir, "logits.npy");
            NpyWriter.Write(path, values, new long[] { 3, 2, 4 });
            var outp = PythonCode("""
                import sys, numpy as np
                a = np.load(sys.argv[1])
                assert a.dtype == np.float32, a.dtype
                assert a.flags['C_CONTIGUOUS']
                print(a.shape, repr(float(a[2, 1, 3])), repr(float(a[0, 0, 0])), repr(float(a.sum())))
                """, path);
            Assert.Equal("(3, 2, 4) 8.5 -3.0 66.0", outp.Trim());
            Assert.Equal(0, new FileInfo(path).Length % 4);
            Assert.Equal(0, (new FileInfo(path).Length - 24 * 4) % 64); // header padded to 64 bytes
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void NpyHeaderIsVersionOneWithOneDimTupleComma()
    {
        var h = NpyWriter.Header(new long[] { 7 });
        Assert.Equal(0x93, h[0]);
        Assert.Equal(1, h[6]);
        Assert.Equal(0, h[7]);
        Assert.Equal(0, h.Length % 64);
        var text = System.Text.Encoding.ASCII.GetString(h, 10, h.Length - 10);
        Assert.StartsWith("{'descr': '<f4', 'fortran_order': False, 'shape': (7,), }", text);
        Assert.EndsWith("\n", text);
        Assert.Throws<ArgumentException>(() => NpyWriter.Write(Path.Combine(Path.GetTempPath(), "never.npy"), new float[5], new long[] { 2, 3 }));
    }

    [Fact]
    public void ClassIndicesAndProbabilitiesByHand()
    {
        // Two classes over a 1x3 image. Logits (0,0), (ln 3, 0), (0, 2): softmax of class 1 = 1/2, 1/4, e²/(1+e²).
        using var logits = tensor(new float[] { 0, (float)Math.Log(3), 0, 0, 0, 2 }, new long[] { 2, 1, 3 });
        Assert.Equal(new byte[] { 0, 0, 1 }, SegmentationOutputs.ClassIndices(logits));
        var p = SegmentationOutputs.Probability(logits, 1);
        double e2 = Math.Exp(2);
        Assert.Equal(new byte[] { 128, 64, (byte)Math.Round(255 * e2 / (1 + e2)) }, p); // 127.5 rounds to even: 128
        Assert.Throws<UserException>(() => SegmentationOutputs.Probability(logits, 2));
    }

    [Fact]
    public void ArgMaxEqualsLibtorchArgmaxTiesIncluded()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        // Scores rounded to a coarse grid, so that many pixels hold the same maximum in several classes.
        var scores = randn(2, 21, 37, 41).mul(2).round();
        foreach (var dim in new long[] { 0, 1, 3 })
            Assert.True(SegmentationOutputs.ArgMax(scores, dim).equal(scores.argmax(dim)).all().item<bool>(), $"dim {dim}");
        // By hand: per pixel the scores over 3 classes are (1,3,3), (5,5,0), (2,2,2) and (0,1,4);
        // the first maximum is class 1, 0, 0 and 2.
        var hand = tensor(new float[] { 1, 5, 2, 0, 3, 5, 2, 1, 3, 0, 2, 4 }).reshape(3, 2, 2);
        Assert.Equal(new byte[] { 1, 0, 0, 2 }, SegmentationOutputs.ClassIndices(hand));
        var chw = scores[1];
        Assert.Equal(chw.argmax(0).to(ScalarType.Byte).ToArray<byte>(), SegmentationOutputs.ClassIndices(chw));
    }

    [Fact]
    public void OverlayBlendsClassColoursAndKeepsBackground()
    {
        var palette = new byte[768];
        palette[3 * 1] = 200; palette[3 * 1 + 1] = 0; palette[3 * 1 + 2] = 100;
        var rgb = new byte[] { 10, 20, 30, 100, 100, 100 };
        var classes = new byte[] { 0, 1 };
        var o = SegmentationOutputs.Overlay(rgb, classes, 1, 2, palette, 0.25);
        // Pixel 1: 0.75·100 + 0.25·(200, 0, 100) = (125, 75, 100).
        Assert.Equal(new byte[] { 10, 20, 30, 125, 75, 100 }, o);
        Assert.Throws<ArgumentException>(() => SegmentationOutputs.Overlay(rgb, new byte[] { 0 }, 1, 2, palette));
    }

    [Fact]
    public void RgbTensorsRoundTripAndNormalize()
    {
        var rgb = TestImage(3, 5);
        using var t = RgbTensors.FromBytes(rgb, 3, 5);
        Assert.Equal(new long[] { 1, 3, 3, 5 }, t.shape);
        Assert.Equal(rgb, RgbTensors.ToBytes(t));
        // Pixel (1,2) green channel: (g/255 − 0.456)/0.224.
        using var n = RgbTensors.Normalize(t);
        float g = rgb[3 * (1 * 5 + 2) + 1];
        using var v = n.select(0, 0).select(0, 1).select(0, 1).select(0, 2);
        Assert.Equal((g / 255f - 0.456f) / 0.224f, v.item<float>(), 5);
    }
}
