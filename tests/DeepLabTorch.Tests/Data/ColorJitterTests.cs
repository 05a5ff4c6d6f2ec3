using System.Globalization;
using DeepLabTorch.Data;
using Xunit;

namespace DeepLabTorch.Tests.Data;

/// <summary>The face-parsing colour jitter against PIL's ImageEnhance (tests/reference/color_jitter.py).</summary>
public sealed class ColorJitterTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [LinuxTheory(LinuxOnly.Python)]
    [InlineData(1.3, 0.6, 1.45)]   // brighter (clipping), flatter, more saturated
    [InlineData(0.55, 1.5, 0.5)]   // darker, more contrast, washed out
    [InlineData(1.0, 1.0, 1.0)]    // identity
    public void MatchesPilImageEnhance(double brightness, double contrast, double saturation)
    {
        const int h = 23, w = 31;
        var rgb = new byte[h * w * 3];
        var rng = new SampleRandom(7, 0, 0);
        for (int i = 0; i < rgb.Length; i++) rgb[i] = (byte)(i % 3 == 0 ? rng.NextInt(0, 255) : (i * 37 + rgb[i - i % 3]) % 256);
        File.WriteAllBytes(_dir["in.bin"], rgb);
        string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        Python.Run("color_jitter.py", _dir["in.bin"], h.ToString(CultureInfo.InvariantCulture), w.ToString(CultureInfo.InvariantCulture),
            F(brightness), F(contrast), F(saturation), _dir["out.bin"]);
        var expected = File.ReadAllBytes(_dir["out.bin"]);
        var ours = (byte[])rgb.Clone();
        ColorJitter.Apply(ours, brightness, contrast, saturation);
        Assert.Equal(expected, ours);
        if (brightness != 1.0) Assert.NotEqual(rgb, ours);
    }

    [Fact]
    public void FactorsLieInTheRange()
    {
        var rng = new SampleRandom(1, 2, 3);
        for (int i = 0; i < 200; i++)
        {
            var (b, c, s) = ColorJitter.Draw(0.5, ref rng);
            Assert.InRange(b, 0.5, 1.5);
            Assert.InRange(c, 0.5, 1.5);
            Assert.InRange(s, 0.5, 1.5);
        }
        var (b0, _, _) = ColorJitter.Draw(1.5, ref rng);
        Assert.InRange(b0, 0.0, 2.5);   // the lower end stops at 0
    }
}
