using System.Globalization;
using DeepLabTorch.Data;
using Xunit;

namespace DeepLabTorch.Tests.Data;

/// <summary>The managed augmentation kernel against torch/scipy (tests/reference/png_fixtures.py augment).</summary>
public class AugmentKernelTests
{
    // One 8-bit level after normalisation, at the smallest std (0.224): the kernel rounds bilinear in fixed point.
    private const float OneLevel = 1f / (255f * 0.224f);

    // AugmentParams is internal: the theory takes the case's index (xUnit's test methods are public).
    private static readonly AugmentParams[] CaseList =
    [
        new AugmentParams(50, 70, 3, 9, 40, 48, false, 0f),   // upscale, crop inside
        new AugmentParams(50, 70, 3, 9, 40, 48, true, 0f),    // mirrored
        new AugmentParams(20, 26, 0, 0, 32, 32, false, 0f),   // downscale, padded right and bottom
        new AugmentParams(61, 43, 30, 10, 40, 40, true, 0f),  // stretched, padded at the bottom
        new AugmentParams(50, 70, 3, 9, 40, 48, false, 0.7f), // blurred (radius 3)
        new AugmentParams(29, 37, 0, 0, 29, 37, true, 1.9f),  // identity scale, blurred (radius 6)
    ];

    public static TheoryData<int> Cases => new(Enumerable.Range(0, CaseList.Length));

    [LinuxTheory(LinuxOnly.Python)]
    [MemberData(nameof(Cases))]
    public void MatchesTheTorchReference(int index)
    {
        var p = CaseList[index];
        int h = 29, w = 37;
        var rnd = new Random(h * 1000 + p.CropX + (p.Flip ? 7 : 0));
        var rgb = new byte[h * w * 3];
        var mask = new byte[h * w];
        // Smooth gradients with noise on top: both bilinear weights and exact sample positions matter.
        for (int i = 0; i < h * w; i++)
        {
            int y = i / w, x = i % w;
            rgb[3 * i] = (byte)(x * 6 + rnd.Next(20));
            rgb[3 * i + 1] = (byte)(y * 8 + rnd.Next(20));
            rgb[3 * i + 2] = (byte)rnd.Next(256);
            mask[i] = (byte)((x / 5 + y / 4 * 3) % 21);
        }
        var s = new SegmentationSample { Id = "k", Height = h, Width = w, Image = rgb, Mask = mask };
        var img = new float[3 * p.OutHeight * p.OutWidth];
        var lab = new long[p.OutHeight * p.OutWidth];
        Transforms.Apply(s, p, img, lab);

        var dir = DataTestUtil.TempDir("augment");
        File.WriteAllBytes(Path.Combine(dir, "in.bin"), [.. rgb, .. mask]);
        string I(int v) => v.ToString(CultureInfo.InvariantCulture);
        DataTestUtil.Python("png_fixtures.py", "augment", Path.Combine(dir, "in.bin"), I(h), I(w), I(p.ScaledHeight), I(p.ScaledWidth),
            I(p.CropY), I(p.CropX), I(p.OutHeight), I(p.OutWidth), p.Flip ? "1" : "0", p.BlurSigma.ToString("R", CultureInfo.InvariantCulture),
            Path.Combine(dir, "img.bin"), Path.Combine(dir, "mask.bin"));
        var refImg = Python.ReadFloats(Path.Combine(dir, "img.bin"));
        var refMaskBytes = File.ReadAllBytes(Path.Combine(dir, "mask.bin"));
        var refMask = new long[refMaskBytes.Length / 8];
        Buffer.BlockCopy(refMaskBytes, 0, refMask, 0, refMaskBytes.Length);

        Assert.Equal(refMask, lab);
        float max = refImg.Zip(img, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(max <= OneLevel * 1.01f, $"max difference {max / OneLevel:F2} levels");
        // Most values agree exactly (to float rounding): the tolerance is for the rare half-level ties.
        double exact = refImg.Zip(img, (a, b) => Math.Abs(a - b) < 1e-5f).Count(e => e) / (double)img.Length;
        Assert.True(exact > 0.95, $"only {exact:P1} equal");
    }

    [Fact]
    public void PaddingWithTheMeanGivesZeroAfterNormalisation()
    {
        var s = new SegmentationSample { Id = "m", Height = 4, Width = 4, Image = new byte[48], Mask = new byte[16] };
        var img = new float[3 * 8 * 8];
        Transforms.Apply(s, new AugmentParams(4, 4, 0, 0, 8, 8, false, 0f), img, Span<long>.Empty, padWithMean: true);
        // round(mean*255) = (124, 116, 104): within half a level of the mean.
        for (int c = 0; c < 3; c++) Assert.InRange(img[c * 64 + 63], -OneLevel, OneLevel);
    }

    [Fact]
    public void RepeatedRunsAndThreadsGiveIdenticalOutput()
    {
        var (rgb, mask) = DataTestUtil.TwoRegionSample(90, 70, 5);
        var s = new SegmentationSample { Id = "d", Height = 70, Width = 90, Image = rgb, Mask = mask };
        var p = new AugmentParams(120, 154, 11, 20, 64, 64, true, 0.8f);
        float[] Run()
        {
            var o = new float[3 * 64 * 64];
            Transforms.Apply(s, p, o, new long[64 * 64]);
            return o;
        }
        var first = Run();
        var others = Enumerable.Range(0, 4).AsParallel().Select(_ => Run()).ToArray();
        Assert.All(others, o => Assert.Equal(first, o));
    }

    [Fact]
    public void NormalizeWritesPlanarChwWithoutTensors()
    {
        var rgb = new byte[] { 255, 0, 128, 0, 255, 64 }; // 1x2
        var chw = new float[6];
        ImageTensor.Normalize(rgb, 1, 2, chw);
        Assert.Equal((1f - 0.485f) / 0.229f, chw[0], 4);
        Assert.Equal((0f - 0.485f) / 0.229f, chw[1], 4);
        Assert.Equal((0f - 0.456f) / 0.224f, chw[2], 4);
        Assert.Equal((128 / 255f - 0.406f) / 0.225f, chw[4], 4);
        Assert.Equal((64 / 255f - 0.406f) / 0.225f, chw[5], 4);
    }
}
