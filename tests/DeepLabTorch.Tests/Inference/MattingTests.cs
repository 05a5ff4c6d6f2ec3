using DeepLabTorch.Inference;
using DeepLabTorch.Extensions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using static DeepLabTorch.Tests.Inference.InferenceTestUtil;

namespace DeepLabTorch.Tests.Inference;

public class MattingTests
{
    [Fact]
    public void BoxMeanShrinksTheWindowAtBorders()
    {
        // 1x3 row [1, 2, 6] with radius 1: means (1+2)/2, (1+2+6)/3, (2+6)/2.
        using var x = tensor(new float[] { 1, 2, 6 }, new long[] { 1, 1, 1, 3 });
        using var m = GuidedFilter.BoxMean(x, 1);
        Assert.Equal(new[] { 1.5f, 3f, 4f }, m.ToArray<float>());
        // 3x3 with radius 1: the corner averages its 2x2 block, the centre all nine.
        using var y = tensor(Enumerable.Range(1, 9).Select(i => (float)i).ToArray(), new long[] { 1, 1, 3, 3 });
        using var my = GuidedFilter.BoxMean(y, 1);
        var a = my.ToArray<float>();
        Assert.Equal((1 + 2 + 4 + 5) / 4f, a[0], 5);
        Assert.Equal(5f, a[4], 5);
        Assert.Equal((5 + 6 + 8 + 9) / 4f, a[8], 5);
    }

    [Fact]
    public void GuidedFilterKeepsAConstantAndFollowsAStep()
    {
        using var guide = tensor(new float[] { 0, 0, 0, 1, 1, 1 }, new long[] { 1, 1, 1, 6 });
        using var constant = full(new long[] { 1, 1, 1, 6 }, 0.3);
        using var q = GuidedFilter.Filter(guide, constant, 2, 1e-3);
        Assert.True(q.allclose(constant, 0, 1e-6));
        // With a tiny eps the output copies the guide's step where p equals the guide.
        using var q2 = GuidedFilter.Filter(guide, guide, 2, 1e-6);
        Assert.True(q2.allclose(guide, 0, 1e-3));
    }

    [Fact]
    public void PersonClassDefaultsToOneForPortraitAndFifteenForVoc()
    {
        var o = new MatteOptions();
        Assert.Equal(1, o.ResolvePersonClass(2));
        Assert.Equal(15, o.ResolvePersonClass(21));
        Assert.Equal(3, (o with { PersonClass = 3 }).ResolvePersonClass(21));
        Assert.Throws<UserException>(() => o.ResolvePersonClass(5));
        Assert.Throws<UserException>(() => new MatteOptions { Smoothing = 1 }.Validate());
    }

    [Fact]
    public void SeveralPersonClassesAddTheirProbabilities()
    {
        // One pixel, logits ln 1, ln 2, ln 3, ln 4: softmax 0.1, 0.2, 0.3, 0.4 by hand.
        using var logits = tensor(new[] { 0f, MathF.Log(2), MathF.Log(3), MathF.Log(4) }, new long[] { 1, 4, 1, 1 });
        using var p13 = Matter.PersonProbability(logits, new[] { 1, 3 });
        Assert.Equal(new long[] { 1, 1, 1, 1 }, p13.shape);
        Assert.Equal(0.6f, p13.item<float>(), 5);
        using var p2 = Matter.PersonProbability(logits, new[] { 2 });
        Assert.Equal(0.3f, p2.item<float>(), 5);
        var o = new MatteOptions { PersonClasses = new[] { 1, 3 } };
        Assert.Equal(new[] { 1, 3 }, o.ResolvePersonClasses(4));
        Assert.Throws<UserException>(() => o.ResolvePersonClasses(3));   // class 3 does not exist in a 3-class model
        Assert.Equal(new[] { 15 }, new MatteOptions().ResolvePersonClasses(21));
        Assert.Throws<UserException>(() => new MatteOptions { PersonClasses = Array.Empty<int>() }.Validate());
    }

    /// <summary>Logits that make class `person` win by 20 inside the mask and lose by 20 outside.</summary>
    private static Tensor MaskLogits(byte[] mask, int h, int w, int classes, int person)
    {
        var v = new float[classes * h * w];
        for (int i = 0; i < h * w; i++)
            v[person * h * w + i] = mask[i] == 1 ? 10 : -10;
        return tensor(v, new long[] { 1, classes, h, w });
    }

    [Fact]
    public void HardMaskCompositeIsExactlyImageInsideAndColourOutside()
    {
        const int h = 6, w = 8;
        var rgb = TestImage(h, w, seed: 1);
        var mask = new byte[h * w];
        for (int y = 1; y < 5; y++) for (int x = 2; x < 6; x++) mask[y * w + x] = 1;
        using var logits = MaskLogits(mask, h, w, 21, 15);
        using var net = new FixedLogitsNet(logits);
        using var matter = new Matter(new Predictor(net), new MatteOptions { EdgeRadius = 0 });
        using var bg = new BackgroundRenderer(new Background.Colour(0, 255, 0), _ => throw new InvalidOperationException());
        var outp = matter.Process(rgb, h, w, bg);
        for (int i = 0; i < h * w; i++)
            for (int k = 0; k < 3; k++)
            {
                byte want = mask[i] == 1 ? rgb[3 * i + k] : (byte)(k == 1 ? 255 : 0);
                Assert.True(want == outp[3 * i + k], $"pixel {i} channel {k}: {outp[3 * i + k]} != {want}");
            }
    }

    [LinuxFact(LinuxOnly.Python)]
    public void RefinedCompositeMatchesNumpyGuidedFilter()
    {
        const int h = 12, w = 10, radius = 2;
        const double eps = 1e-2;
        var dir = TempDir("matte");
        try
        {
            var rgb = TestImage(h, w, seed: 4);
            var bgRgb = TestImage(h, w, seed: 9).Select(b => (byte)(255 - b)).ToArray();
            var mask = new byte[h * w];
            for (int y = 3; y < 10; y++) for (int x = 3; x < 7; x++) mask[y * w + x] = 1;
            // A portrait (2-class) model whose logits are soft: ±1.5 around the mask.
            var v = new float[2 * h * w];
            for (int i = 0; i < h * w; i++) v[h * w + i] = mask[i] == 1 ? 1.5f : -1.5f;
            using var logits = tensor(v, new long[] { 1, 2, h, w });
            using var net = new FixedLogitsNet(logits);
            using var matter = new Matter(new Predictor(net), new MatteOptions { EdgeRadius = radius, EdgeEps = eps });
            using var bg = new BackgroundRenderer(new Background.Picture("bg.png"), _ => (bgRgb, h, w));
            var outp = matter.Process(rgb, h, w, bg);

            WriteU8(Path.Combine(dir, "image.npy"), rgb, h, w);
            WriteU8(Path.Combine(dir, "background.npy"), bgRgb, h, w);
            using (var l0 = logits.select(0, 0)) NpyWriter.Write(Path.Combine(dir, "logits.npy"), l0.contiguous());
            Python("infer_matte.py", dir, "1", radius.ToString(), eps.ToString(System.Globalization.CultureInfo.InvariantCulture));
            var (shape, expected) = ReadNpy(Path.Combine(dir, "expected.npy"));
            Assert.Equal(new long[] { h, w, 3 }, shape);
            int off = 0;
            for (int i = 0; i < outp.Length; i++) if (Math.Abs(outp[i] - expected[i]) > 1) off++;
            Assert.True(off == 0, $"{off} channel values differ by more than 1 from numpy");

            // And the refinement really changed the matte: it is not the raw probability.
            var (_, alpha) = ReadNpy(Path.Combine(dir, "alpha.npy"));
            double p = 1 / (1 + Math.Exp(-3)); // softmax of ±1.5 two-class logits inside the mask
            Assert.Contains(alpha, a => Math.Abs(a - p) > 0.05 && Math.Abs(a - (1 - p)) > 0.05);
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>uint8 [H,W,3] .npy, written by hand (the writer under test only does float32).</summary>
    private static void WriteU8(string path, byte[] rgb, int h, int w)
    {
        var dict = $"{{'descr': '|u1', 'fortran_order': False, 'shape': ({h}, {w}, 3), }}";
        int total = (10 + dict.Length + 1 + 63) / 64 * 64;
        var header = dict.PadRight(total - 10 - 1) + "\n";
        using var f = File.Create(path);
        f.Write(new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0, (byte)(header.Length & 0xff), (byte)(header.Length >> 8) });
        f.Write(System.Text.Encoding.ASCII.GetBytes(header));
        f.Write(rgb);
    }

    [Fact]
    public void TemporalSmoothingMixesThePreviousAlpha()
    {
        const int h = 4, w = 4;
        var on = Enumerable.Repeat((byte)1, h * w).ToArray();
        var off = new byte[h * w];
        using var l1 = MaskLogits(on, h, w, 2, 1);
        using var l0 = MaskLogits(off, h, w, 2, 1);
        var current = l1;
        using var net = new SwitchNet(() => current);
        using var matter = new Matter(new Predictor(net), new MatteOptions { EdgeRadius = 0, Smoothing = 0.75 });
        var frame = TestImage(h, w);
        using var f = RgbTensors.FromBytes(frame, h, w);
        using var a1 = matter.Alpha(f);
        current = l0;
        using var a2 = matter.Alpha(f);
        // Alpha 1 then 0: the second is 0.75·1 + 0.25·0.
        Assert.Equal(1.0, a1.mean().ToDouble(), 4);
        Assert.Equal(0.75, a2.mean().ToDouble(), 4);
        matter.Reset();
        using var a3 = matter.Alpha(f);
        Assert.Equal(0.0, a3.mean().ToDouble(), 4);
    }

    private sealed class SwitchNet : nn.Module<Tensor, Tensor>
    {
        private readonly Func<Tensor> _source;
        public SwitchNet(Func<Tensor> source) : base(nameof(SwitchNet)) => _source = source;
        public override Tensor forward(Tensor x) => _source().clone();
    }

    [Fact]
    public void BackgroundSpecsParse()
    {
        Assert.Equal(new Background.Colour(0x12, 0xab, 0xEF), Background.Parse("#12abEF"));
        Assert.Equal(new Background.Colour(0xff, 0x00, 0x88), Background.Parse("#f08"));
        Assert.Equal(new Background.Colour(0, 0, 255), Background.Parse("Blue"));
        Assert.Equal(new Background.Blur(null), Background.Parse("blur"));
        Assert.Equal(new Background.Blur(7), Background.Parse("blur:7"));
        var file = Path.GetTempFileName();
        try { Assert.Equal(new Background.Picture(file), Background.Parse(file)); }
        finally { File.Delete(file); }
        var e = Assert.Throws<UserException>(() => Background.Parse("no-such-thing.jpg"));
        Assert.Contains("#RRGGBB", e.Message);
        Assert.Throws<UserException>(() => Background.Parse("#12345"));
        Assert.Throws<UserException>(() => Background.Parse("blur:0"));
        Assert.Throws<UserException>(() => Background.Parse(" "));
    }

    [Fact]
    public void PictureBackgroundCoversAndCentreCrops()
    {
        // A 2x4 picture whose columns are 0,1,2,3 (/255) scaled to cover 4x4: 4x8, then the middle 4 columns.
        var pic = new byte[2 * 4 * 3];
        for (int y = 0; y < 2; y++) for (int x = 0; x < 4; x++) for (int k = 0; k < 3; k++) pic[3 * (y * 4 + x) + k] = (byte)(x * 60);
        using var r = new BackgroundRenderer(new Background.Picture("p"), _ => (pic, 2, 4));
        using var frame = zeros(1, 3, 4, 4);
        using var bg = r.Render(frame);
        Assert.Equal(new long[] { 1, 3, 4, 4 }, bg.shape);
        var b = RgbTensors.ToBytes(bg);
        // The centre crop keeps the middle of the ramp: left edge above 0, right edge below 180, increasing.
        Assert.True(b[0] > 0 && b[3 * 3] < 180 && b[0] < b[3 * 3], $"row 0: {b[0]} .. {b[9]}");
        using var blur = r.Render(frame); // cached second call gives the same picture
        Assert.True(blur.Equals(bg));
    }

    [Fact]
    public void BlurBackgroundSmoothsButKeepsTheMean()
    {
        var rgb = TestImage(16, 16, seed: 2);
        using var frame = RgbTensors.FromBytes(rgb, 16, 16);
        using var r = new BackgroundRenderer(new Background.Blur(2), _ => throw new InvalidOperationException());
        using var bg = r.Render(frame);
        using var dx = bg.narrow(3, 1, 15) - bg.narrow(3, 0, 15);
        using var fx = frame.narrow(3, 1, 15) - frame.narrow(3, 0, 15);
        Assert.True(dx.abs().mean().ToDouble() < 0.5 * fx.abs().mean().ToDouble());
        Assert.Equal(frame.mean().ToDouble(), bg.mean().ToDouble(), 1);
    }
}
