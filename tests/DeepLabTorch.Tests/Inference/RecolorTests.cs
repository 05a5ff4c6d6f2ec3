using DeepLabTorch.Inference;
using Xunit;

namespace DeepLabTorch.Tests.Inference;

/// <summary>The makeup demo's recolouring: the parts take the colour's hue (and saturation), the value stays.</summary>
public class RecolorTests
{
    [Fact]
    public void HueComesFromTheColourAndValueFromThePixel()
    {
        // Pixel 0 (200, 100, 50) is hair (17): v = 200/255, s = 150/200 = 0.75. Blue's hue is 240, where
        // c = v*s = 150/255, m = v - c = 50/255 and RGB = (m, m, c + m) = (50, 50, 200), by hand.
        var rgb = new byte[] { 200, 100, 50, 200, 100, 50, 10, 20, 30 };
        var classes = new byte[] { 17, 1, 17 };
        var hue = Recolor.Apply(rgb, classes, new[] { 17 }, (0, 0, 255), takeSaturation: false);
        Assert.Equal(new byte[] { 50, 50, 200 }, hue[..3]);
        Assert.Equal(rgb[3..6], hue[3..6]);   // skin untouched
        // (10, 20, 30): v = 30/255, s = 20/30; hue 240 gives (10, 10, 30).
        Assert.Equal(new byte[] { 10, 10, 30 }, hue[6..9]);
        // With the colour's saturation too (lips): red (hue 0, s 1) at v = 200/255 is (200, 0, 0).
        var lips = Recolor.Apply(rgb, new byte[] { 12, 0, 0 }, new[] { 12, 13 }, (255, 0, 0), takeSaturation: true);
        Assert.Equal(new byte[] { 200, 0, 0 }, lips[..3]);
        Assert.Equal(rgb[3..], lips[3..]);
    }

    [Theory]
    [InlineData(0, 0, 0)]
    [InlineData(255, 255, 255)]
    [InlineData(12, 200, 99)]
    [InlineData(250, 3, 128)]
    public void HsvRoundTripsBytes(byte r, byte g, byte b)
    {
        var (h, s, v) = Recolor.ToHsv(r, g, b);
        Assert.Equal((r, g, b), Recolor.FromHsv(h, s, v));
    }
}
