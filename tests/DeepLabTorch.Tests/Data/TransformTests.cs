using DeepLabTorch.Data;
using Xunit;

namespace DeepLabTorch.Tests.Data;

public class TransformTests
{
    private static SegmentationSample Sample(int w, int h, int cls)
    {
        var (rgb, mask) = DataTestUtil.TwoRegionSample(w, h, cls);
        // A void band like VOC's at the region border.
        for (int y = 0; y < h; y++) mask[y * w + w / 3] = 255;
        return new SegmentationSample { Id = "s", Height = h, Width = w, Image = rgb, Mask = mask };
    }

    private static (float[] Img, long[] Mask) Run(SegmentationSample s, AugmentParams p)
    {
        var img = new float[3 * p.OutHeight * p.OutWidth];
        var mask = new long[p.OutHeight * p.OutWidth];
        Transforms.Apply(s, p, img, mask);
        return (img, mask);
    }

    [Fact]
    public void AMirroredFaceSwapsItsLeftAndRightLabels()
    {
        // 4 x 2: left eye (4) in column 0, right eye (5) in column 3, skin (1) between; identity geometry but mirrored.
        var mask = new byte[] { 4, 1, 1, 5, 2, 1, 1, 3 };
        var s = new SegmentationSample { Id = "f", Height = 2, Width = 4, Image = new byte[2 * 4 * 3], Mask = mask };
        var p = new AugmentParams(2, 4, 0, 0, 2, 4, Flip: true, BlurSigma: 0f);
        var img = new float[3 * 8];
        var outMask = new long[8];
        Transforms.Apply(s, p, img, outMask, mirrorPairs: CelebAMaskHq.MirrorPairs);
        // Mirrored: the column that was the right eye is now on the left, and it is the left eye of the mirrored face.
        Assert.Equal(new long[] { 4, 1, 1, 5, 2, 1, 1, 3 }, outMask);
        Transforms.Apply(s, p, img, outMask);
        Assert.Equal(new long[] { 5, 1, 1, 4, 3, 1, 1, 2 }, outMask);   // without pairs: a plain mirror
        Transforms.Apply(s, p with { Flip = false }, img, outMask, mirrorPairs: CelebAMaskHq.MirrorPairs);
        Assert.Equal(new long[] { 4, 1, 1, 5, 2, 1, 1, 3 }, outMask);   // unmirrored: nothing swaps
    }

    [Fact]
    public void ColourJitterIsDrawnOnlyWhenAskedAndChangesOnlyTheImage()
    {
        var s = Sample(60, 40, 7);
        var plain = new DataOptions { BaseSize = 40, CropSize = 32, Seed = 5 };
        var jitter = plain with { ColorJitter = 0.5 };
        var p0 = Transforms.Train(s.Height, s.Width, plain, 0, 3);
        var p1 = Transforms.Train(s.Height, s.Width, jitter, 0, 3);
        Assert.False(p0.Jitters);
        Assert.True(p1.Jitters);
        Assert.Equal(p0, p1 with { Brightness = 1, Contrast = 1, Saturation = 1 });   // the geometry is the same draw
        var (img0, mask0) = Run(s, p0);
        var (img1, mask1) = Run(s, p1);
        Assert.Equal(mask0, mask1);
        Assert.NotEqual(img0, img1);
        var copy = (byte[])s.Image.Clone();
        Run(s, p1);
        Assert.Equal(copy, s.Image);   // the sample itself is not jittered in place
    }

    [Fact]
    public void MaskValuesStayInClassesOrIgnore()
    {
        var s = Sample(60, 40, 7);
        var o = new DataOptions { BaseSize = 40, CropSize = 32, Seed = 5 };
        for (int i = 0; i < 20; i++)
        {
            var (_, mask) = Run(s, Transforms.Train(s.Height, s.Width, o, 0, i));
            Assert.All(mask, v => Assert.True(v is 0 or 7 or 255, $"value {v}"));
        }
    }

    [Fact]
    public void PaddingIs255InTheMaskAndBlackInTheImage()
    {
        var s = Sample(30, 20, 4);
        // Scaled to 15x10 inside a 16x16 crop at (0,0): rows >= 10 and columns >= 15 are padding.
        var p = new AugmentParams(10, 15, 0, 0, 16, 16, false, 0f);
        var (img, mask) = Run(s, p);
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 16; x++)
            {
                bool pad = y >= 10 || x >= 15;
                if (pad)
                {
                    Assert.Equal(255, mask[y * 16 + x]);
                    Assert.Equal(-0.485f / 0.229f, img[y * 16 + x], 4); // black, normalized
                }
                else Assert.True(mask[y * 16 + x] is 0 or 4 or 255);
            }
        Assert.Contains(mask, v => v == 4);
        // The reference recipe pads when the random scale is below the crop.
        var o = new DataOptions { BaseSize = 20, CropSize = 64 };
        var (_, m2) = Run(s, Transforms.Train(s.Height, s.Width, o, 0, 0));
        Assert.Equal(255, m2[^1]);
    }

    [Fact]
    public void FlipMirrorsImageAndMaskTogether()
    {
        var s = Sample(48, 32, 9);
        var plain = Run(s, new AugmentParams(32, 48, 0, 0, 32, 48, false, 0f));
        var flipped = Run(s, new AugmentParams(32, 48, 0, 0, 32, 48, true, 0f));
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 48; x++)
            {
                Assert.Equal(plain.Mask[y * 48 + x], flipped.Mask[y * 48 + 47 - x]);
                for (int c = 0; c < 3; c++)
                    Assert.Equal(plain.Img[c * 32 * 48 + y * 48 + x], flipped.Img[c * 32 * 48 + y * 48 + 47 - x], 4);
            }
    }

    [Fact]
    public void ImageAndMaskStayAlignedUnderRandomAugmentation()
    {
        // Colour encodes the class (class 6 -> R = 60): away from borders, every pixel's red channel
        // must agree with its mask label, whatever flip, scale and crop were drawn.
        var s = Sample(64, 48, 6);
        var o = new DataOptions { BaseSize = 48, CropSize = 40, Seed = 11 };
        int checkedPixels = 0;
        for (int i = 0; i < 12; i++)
        {
            var p = Transforms.Train(s.Height, s.Width, o, 3, i);
            var (img, mask) = Run(s, p);
            int n = p.OutHeight * p.OutWidth;
            for (int y = 1; y < p.OutHeight - 1; y++)
                for (int x = 1; x < p.OutWidth - 1; x++)
                {
                    int k = y * p.OutWidth + x;
                    long m = mask[k];
                    if (m == 255 || mask[k - 1] != m || mask[k + 1] != m || mask[k - p.OutWidth] != m || mask[k + p.OutWidth] != m) continue;
                    float red = img[k] * 0.229f + 0.485f; // back to [0,1]
                    Assert.InRange(red * 255, m * 10 - 1.5, m * 10 + 1.5);
                    checkedPixels++;
                }
        }
        Assert.True(checkedPixels > 1000);
    }

    [Fact]
    public void SameSeedEpochIndexGivesSameCrop()
    {
        var o = new DataOptions { BaseSize = 513, CropSize = 513, Seed = 7, GaussianBlur = true };
        Assert.Equal(Transforms.Train(375, 500, o, 2, 17), Transforms.Train(375, 500, o, 2, 17));
        var draws = Enumerable.Range(0, 10).Select(e => Transforms.Train(375, 500, o, e, 17)).Distinct().Count();
        Assert.True(draws > 5, "epochs should draw different augmentations");
        Assert.NotEqual(Transforms.Train(375, 500, o, 2, 17), Transforms.Train(375, 500, o with { Seed = 8 }, 2, 17));
        var p = Transforms.Train(375, 500, o, 2, 17);
        Assert.InRange(Math.Min(p.ScaledHeight, p.ScaledWidth), 256, 1026);
        Assert.Equal((513, 513), (p.OutHeight, p.OutWidth));
    }

    [Fact]
    public void ValidationIsTheFullImageUnlessValCrop()
    {
        var o = new DataOptions { CropSize = 100 };
        Assert.Equal(new AugmentParams(375, 500, 0, 0, 375, 500, false, 0f), Transforms.Val(375, 500, o));
        // Fixed-scale crop: short side 100 -> 100x133, center x = round(33/2) = 16 (banker's rounding as Python's round).
        Assert.Equal(new AugmentParams(100, 133, 0, 16, 100, 100, false, 0f), Transforms.Val(375, 500, o with { ValCrop = true }));
    }

    [Fact]
    public void BlurSmoothsButKeepsTheMask()
    {
        var s = Sample(40, 30, 12);
        var sharp = Run(s, new AugmentParams(30, 40, 0, 0, 30, 40, false, 0f));
        var blurred = Run(s, new AugmentParams(30, 40, 0, 0, 30, 40, false, 2f));
        Assert.Equal(sharp.Mask, blurred.Mask);
        // Across the class border (x = 13) the red channel changes gradually after blur.
        int row = 15 * 40;
        Assert.True(Math.Abs(blurred.Img[row + 12] - blurred.Img[row + 14]) < Math.Abs(sharp.Img[row + 12] - sharp.Img[row + 14]));
    }
}
