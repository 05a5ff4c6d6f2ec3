using DeepLabTorch.Evaluation;
using Xunit;

namespace DeepLabTorch.Tests.Evaluation;

public class BoundaryFScoreTests
{
    /// <summary>A 6x6 mask (clear of the image edge) with a 3x3 square of foreground whose top-left corner is (y, x).</summary>
    private static byte[] Square(int y, int x)
    {
        var m = new byte[36];
        for (var r = y; r < y + 3; r++)
            for (var c = x; c < x + 3; c++)
                if (r < 6 && c < 6) m[r * 6 + c] = 1;
        return m;
    }

    [Fact]
    public void BoundaryIsTheRingOfTheSquare()
    {
        var b = BoundaryFScore.Boundary(Square(1, 1), 6, 6);
        Assert.Equal(8, b.Count(v => v));
        Assert.False(b[2 * 6 + 2]); // the centre is interior
    }

    [Fact]
    public void IdenticalMasksScoreOne()
    {
        var s = BoundaryFScore.Compute(Square(1, 1), Square(1, 1), 6, 6, tolerance: 0);
        Assert.Equal(1.0, s.F);
        Assert.Equal(8, s.PredictedBoundary);
    }

    [Fact]
    public void AOnePixelShiftIsForgivenWithinToleranceOnly()
    {
        // Rings of the square at column 1 and at column 2 share 4 of their 8 pixels.
        var exact = BoundaryFScore.Compute(Square(1, 2), Square(1, 1), 6, 6, tolerance: 0);
        Assert.Equal(0.5, exact.Precision, 12);
        Assert.Equal(0.5, exact.Recall, 12);
        Assert.Equal(0.5, exact.F, 12);
        var tolerant = BoundaryFScore.Compute(Square(1, 2), Square(1, 1), 6, 6, tolerance: 1);
        Assert.Equal(1.0, tolerant.F, 12);
    }

    [Fact]
    public void EmptyMasksFollowTheConventions()
    {
        var empty = new byte[36];
        Assert.Equal(1.0, BoundaryFScore.Compute(empty, empty, 6, 6).F);
        var missed = BoundaryFScore.Compute(empty, Square(1, 1), 6, 6);
        Assert.Equal(0.0, missed.F);
        Assert.Equal(0.0, missed.Recall);
    }

    [Fact]
    public void AccumulatorSumsCountsOverImages()
    {
        var acc = new BoundaryFScore(tolerance: 0);
        acc.Update(Square(1, 1), Square(1, 1), 6, 6);   // 8 of 8 matched
        acc.Update(Square(1, 2), Square(1, 1), 6, 6);   // 4 of 8 matched
        var total = acc.Total();
        Assert.Equal(12.0 / 16, total.Precision, 12);
        Assert.Equal(0.75, acc.MeanF, 12);              // (1 + 0.5) / 2
        Assert.Equal(2, acc.Images);
        Assert.Throws<ArgumentException>(() => acc.Update(new byte[3], new byte[36], 6, 6));
    }
}
