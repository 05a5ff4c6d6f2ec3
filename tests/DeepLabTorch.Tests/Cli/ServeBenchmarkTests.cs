using DeepLabTorch.Cli.Bench;
using Xunit;

namespace DeepLabTorch.Tests.Cli;

/// <summary>The pure parts of `deeplab bench serve`: percentiles, the answer check and the Server-Timing header; goldens by hand.</summary>
public class ServeBenchmarkTests
{
    // Sorted: 15 20 35 40 50; h = 4p/100 between ranks (numpy.percentile gives the same).
    [Theory]
    [InlineData(0, 15)]
    [InlineData(40, 29)]     // h 1.6: 20 + 0.6 * 15
    [InlineData(50, 35)]     // h 2
    [InlineData(95, 48)]     // h 3.8: 40 + 0.8 * 10
    [InlineData(99, 49.6)]   // h 3.96
    [InlineData(100, 50)]
    public void PercentilesInterpolateBetweenRanks(double p, double expected) =>
        Assert.Equal(expected, Percentiles.Of(new double[] { 40, 15, 50, 35, 20 }, p), 10);

    [Fact]
    public void PercentilesOfEvenCountsOneValueAndNone()
    {
        Assert.Equal(2.5, Percentiles.Of(new double[] { 4, 1, 3, 2 }, 50), 10);
        Assert.Equal(7, Percentiles.Of(new double[] { 7 }, 99));
        Assert.True(double.IsNaN(Percentiles.Of(Array.Empty<double>(), 50)));
        Assert.Throws<ArgumentOutOfRangeException>(() => Percentiles.Of(new double[] { 1 }, 101));
    }

    [Fact]
    public void AnAnswerIsAPngOfTheImagesSize()
    {
        // Signature, IHDR length 13, "IHDR", width 513 (0x201), height 2, then the rest of IHDR.
        byte[] png = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 2, 1, 0, 0, 0, 2, 8, 3, 0, 0, 0];
        Assert.True(ServeBenchmark.IsPng(png, 513, 2));
        Assert.False(ServeBenchmark.IsPng(png, 2, 513));
        Assert.False(ServeBenchmark.IsPng(png.AsSpan(0, 20), 513, 2));
        var jpeg = (byte[])png.Clone();
        jpeg[1] = 0xD8;
        Assert.False(ServeBenchmark.IsPng(jpeg, 513, 2));
    }

    [Theory]
    [InlineData("total;dur=12.5", 12.5)]
    [InlineData("total;dur=310", 310.0)]
    [InlineData("queue;dur=3", null)]
    [InlineData(null, null)]
    public void ServerTimingGivesTheServersTotal(string? header, double? expected) => Assert.Equal(expected, ServeBenchmark.ServerTotal(header));
}
