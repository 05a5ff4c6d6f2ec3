using DeepLabTorch.Cli;
using DeepLabTorch.Cli.Bench;
using DeepLabTorch.Data;
using DeepLabTorch.Extensions;
using DeepLabTorch.Inference;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using static DeepLabTorch.Tests.Inference.InferenceTestUtil;

namespace DeepLabTorch.Tests.Inference;

/// <summary>PoissonBlend against hand-solved strips, its edge cases, the seam error, and matte --blend.</summary>
public class PoissonBlendTests
{
    private const int Rows = 4, Cols = 12, Step = 6;

    /// <summary>
    /// A strip [1,3,Rows,Cols] whose every row is the same: value(x) in all three channels, and alpha 1 left of
    /// column Step, 0 from it on. Every row being equal makes the 2-D problem the 1-D one.
    /// </summary>
    private static (Tensor Fg, Tensor Bg, Tensor Alpha) Strip(Func<int, double> fg, Func<int, double> bg)
    {
        var f = new float[3 * Rows * Cols];
        var b = new float[3 * Rows * Cols];
        var a = new float[Rows * Cols];
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < Rows; y++)
                for (int x = 0; x < Cols; x++)
                {
                    f[(c * Rows + y) * Cols + x] = (float)fg(x);
                    b[(c * Rows + y) * Cols + x] = (float)bg(x);
                    a[y * Cols + x] = x < Step ? 1 : 0;
                }
        return (tensor(f, new long[] { 1, 3, Rows, Cols }), tensor(b, new long[] { 1, 3, Rows, Cols }), tensor(a, new long[] { 1, 1, Rows, Cols }));
    }

    private static readonly PoissonOptions Exact = new() { BandRadius = 2, Screening = 0, Tolerance = 1e-7, MaxIterations = 200 };

    private static void AssertRows(Tensor result, double[] want, double tolerance)
    {
        var got = result.ToArray<float>();
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < Rows; y++)
                for (int x = 0; x < Cols; x++)
                    Assert.True(Math.Abs(got[(c * Rows + y) * Cols + x] - want[x]) <= tolerance,
                        $"channel {c} row {y} column {x}: {got[(c * Rows + y) * Cols + x]} != {want[x]}");
    }

    [Fact]
    public void EqualGradientsGiveTheLinearRampAcrossTheBand()
    {
        // fg = 0.2 + 0.02x, bg = 0.6 + 0.02x: the same gradient, bg 0.4 brighter. Radius 2 around the step between
        // columns 5 and 6 makes the band columns 4..7, fixed at column 3 (fg = 0.26) and 8 (bg = 0.76). Δu = 0 there
        // with the guidance's constant 0.02 slope: u rises linearly, 0.5/5 = 0.1 a column.
        var (fg, bg, alpha) = Strip(x => 0.2 + 0.02 * x, x => 0.6 + 0.02 * x);
        using var _f = fg; using var _b = bg; using var _a = alpha;
        using var u = PoissonBlend.Composite(fg, bg, alpha, Exact);
        AssertRows(u, new[] { 0.20, 0.22, 0.24, 0.26, 0.36, 0.46, 0.56, 0.66, 0.76, 0.78, 0.80, 0.82 }, 1e-5);
    }

    [Fact]
    public void DifferentGradientsFollowTheGuidancePlusOneConstant()
    {
        // fg = 0.1 + 0.04x, bg = 0.9 − 0.02x. Guidance per edge x→x+1: 0.04 on the person (3→4, 4→5), the mean
        // 0.01 across the outline (5→6), −0.02 off it (6→7, 7→8); they sum to 0.05. u(3) = fg(3) = 0.22 and
        // u(8) = bg(8) = 0.74, so each of the 5 edges adds its guidance plus (0.52 − 0.05)/5 = 0.094:
        // u(4) = 0.354, u(5) = 0.488, u(6) = 0.592, u(7) = 0.666. (The start guess, 0.372 at column 4, is not this.)
        var (fg, bg, alpha) = Strip(x => 0.1 + 0.04 * x, x => 0.9 - 0.02 * x);
        using var _f = fg; using var _b = bg; using var _a = alpha;
        using var u = PoissonBlend.CompositeWithReport(fg, bg, alpha, Exact, out var report);
        AssertRows(u, new[] { 0.10, 0.14, 0.18, 0.22, 0.354, 0.488, 0.592, 0.666, 0.74, 0.72, 0.70, 0.68 }, 1e-5);
        Assert.Equal(Rows * 4L, report.BandPixels);
        Assert.True(report.Iterations > 0);
    }

    [Fact]
    public void SeamErrorOfTheStripIsTheJumpForAlphaAndAFifthOfItForPoisson()
    {
        // Across the outline (5→6) the expected step is 0.02; alpha blending steps bg(6) − fg(5) = 0.72 − 0.30 = 0.42
        // (error 0.40, the brightness offset), the Poisson ramp steps 0.1 (error 0.08).
        var (fg, bg, alpha) = Strip(x => 0.2 + 0.02 * x, x => 0.6 + 0.02 * x);
        using var _f = fg; using var _b = bg; using var _a = alpha;
        using var plain = Matter.Composite(fg, bg, alpha);
        using var poisson = PoissonBlend.Composite(fg, bg, alpha, Exact);
        Assert.Equal(0.40, PoissonBlend.SeamError(plain, fg, bg, alpha), 5);
        Assert.Equal(0.08, PoissonBlend.SeamError(poisson, fg, bg, alpha), 5);
    }

    [Fact]
    public void PoissonSeamErrorIsBelowAlphasOnASyntheticComposite()
    {
        var (fg, bg, alpha) = BlendBenchmark.Scene(72, 96, offset: 0.25);
        using var _f = fg; using var _b = bg; using var _a = alpha;
        using var plain = Matter.Composite(fg, bg, alpha);
        using var poisson = PoissonBlend.Composite(fg, bg, alpha, new PoissonOptions { BandRadius = 4 });
        double ea = PoissonBlend.SeamError(plain, fg, bg, alpha), ep = PoissonBlend.SeamError(poisson, fg, bg, alpha);
        // The soft 2-pixel edge halves the step alpha blending leaves; it is still several hundredths (0.061 when written).
        Assert.True(ea > 0.04, $"alpha's seam error {ea} should show the brightness offset");
        Assert.True(ep < ea / 3, $"Poisson's seam error {ep} is not well below alpha's {ea}");
        Assert.True(poisson.min().item<float>() >= 0 && poisson.max().item<float>() <= 1);
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(0.0)]
    public void FlatAlphaGivesThePhotoOrTheBackground(double value)
    {
        using var fg = RandomTensor(new long[] { 2, 3, 9, 11 }, 1).sigmoid();
        using var bg = RandomTensor(new long[] { 2, 3, 9, 11 }, 2).sigmoid();
        using var alpha = full(new long[] { 2, 1, 9, 11 }, value);
        using var u = PoissonBlend.CompositeWithReport(fg, bg, alpha, null, out var report);
        Assert.Equal(0L, report.BandPixels);
        Assert.Equal((value == 1 ? fg : bg).ToArray<float>(), u.ToArray<float>());
    }

    [Fact]
    public void OutsideTheBandThePhotoAndTheBackgroundStay()
    {
        // A hard square person in a batch of two different frames: pixels more than the radius from the outline
        // keep fg inside and bg outside.
        const int n = 2, h = 24, w = 30, r = 3;
        using var fg = RandomTensor(new long[] { n, 3, h, w }, 3).sigmoid();
        using var bg = RandomTensor(new long[] { n, 3, h, w }, 4).sigmoid();
        var a = new float[n * h * w];
        for (int i = 0; i < n; i++)
            for (int y = 6; y < 18; y++)
                for (int x = 8 + 4 * i; x < 20 + 4 * i; x++) a[(i * h + y) * w + x] = 1;
        using var alpha = tensor(a, new long[] { n, 1, h, w });
        using var u = PoissonBlend.Composite(fg, bg, alpha, new PoissonOptions { BandRadius = r });
        var (got, f, b) = (u.ToArray<float>(), fg.ToArray<float>(), bg.ToArray<float>());
        for (int i = 0; i < n; i++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    int x0 = 8 + 4 * i;
                    bool inside = y >= 6 + r && y < 18 - r && x >= x0 + r && x < x0 + 12 - r;
                    bool outside = y < 6 - r || y >= 18 + r || x < x0 - r || x >= x0 + 12 + r;
                    if (!inside && !outside) continue;
                    for (int c = 0; c < 3; c++)
                    {
                        int k = ((i * 3 + c) * h + y) * w + x;
                        Assert.Equal(inside ? f[k] : b[k], got[k]);
                    }
                }
    }

    [Fact]
    public void BadOptionsAndShapesAreRefused()
    {
        using var fg = zeros(1, 3, 5, 5);
        using var alpha = zeros(1, 1, 5, 4);
        Assert.Throws<ArgumentException>(() => PoissonBlend.Composite(fg, fg, alpha));
        Assert.Throws<UserException>(() => new PoissonOptions { BandRadius = 0 }.Validate());
        Assert.Throws<UserException>(() => new PoissonOptions { Tolerance = double.NaN }.Validate());
    }

    [Fact]
    public void MatteVerbTakesBlendPoissonAndRefusesOtherModes()
    {
        var dir = TempDir("matte-poisson");
        try
        {
            const int h = 30, w = 38;
            var input = Path.Combine(dir, "photo.png");
            ImageCodec.WritePng(input, TestImage(h, w, 3), h, w);
            var weights = PredictVerbTests.SaveModel(dir, 2, new[] { "background", "person" }, out var model);
            model.Dispose();
            var output = Path.Combine(dir, "out.png");
            Assert.Equal(0, Program.Run(new[] { "matte", "--weights", weights, "--input", input, "--background", "#2040ff", "--output", output,
                "--blend", "poisson", "--blend-band", "3", "--device", "cpu", "--quiet" }, new StringWriter(), new StringWriter()));
            var (_, gh, gw) = ImageCodec.DecodeImage(output);
            Assert.Equal((h, w), (gh, gw));

            var err = new StringWriter();
            Assert.Equal(2, Program.Run(new[] { "matte", "--weights", weights, "--input", input, "--background", "red", "--output", output,
                "--blend", "fancy" }, new StringWriter(), err));
            var lines = err.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal("deeplab: --blend 'fancy' is not a blend mode: give alpha or poisson", Assert.Single(lines));
        }
        finally { Directory.Delete(dir, true); }
    }
}
