using DeepLabTorch.Data;
using DeepLabTorch.Training;
using Xunit;

namespace DeepLabTorch.Tests.Training;

public class ClassWeightsTests
{
    /// <summary>Two 2x3 masks: class 0 six times, class 1 twice, class 2 never, and two ignore pixels.</summary>
    private sealed class Masks : ISegmentationDataset
    {
        public bool Fail { get; init; }
        public string Name => "hand";
        public int Count => 2;
        public IReadOnlyList<string> ClassNames { get; } = new[] { "a", "b", "c" };
        public SegmentationSample Load(int index)
        {
            if (Fail) throw new InvalidOperationException("the cache should have been used");
            var mask = index == 0 ? new byte[] { 0, 0, 0, 1, 255, 0 } : new byte[] { 0, 1, 255, 0, 7, 7 };
            return new SegmentationSample { Id = $"m{index}", Height = 2, Width = 3, Image = new byte[18], Mask = mask };
        }
    }

    // 1 / ln(1.02 + z/8) for z = 6, 2, 0, by hand (Python's math.log).
    private static readonly double[] Expected = { 1.7513762200058787, 4.1838045679260345, 50.4983497918439 };

    [Fact]
    public void CountsAndWeightsFollowTheReferenceFormula()
    {
        var counts = ClassWeights.CountLabels(new Masks(), 3);
        // Values >= num_classes (the 7s here, 255 void) are not counted, as the reference's mask does.
        Assert.Equal(new long[] { 6, 2, 0 }, counts);
        var w = ClassWeights.FromCounts(counts);
        for (var i = 0; i < 3; i++) Assert.Equal(Expected[i], w[i], 12);
        Assert.Throws<UserException>(() => ClassWeights.FromCounts(new long[] { 0, 0 }));
    }

    [Fact]
    public void WeightsAreCachedPerDataSet()
    {
        var dir = ReferenceScripts.TempDir("weights");
        try
        {
            var path = Path.Combine(dir, "hand_classes_weights.json");
            var first = ClassWeights.LoadOrCompute(new Masks(), 3, path);
            Assert.True(File.Exists(path));
            // The second call must not touch the masks.
            var second = ClassWeights.LoadOrCompute(new Masks { Fail = true }, 3, path);
            Assert.Equal(first, second);
            // A different class count invalidates the cache.
            Assert.Throws<InvalidOperationException>(() => ClassWeights.LoadOrCompute(new Masks { Fail = true }, 4, path));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
