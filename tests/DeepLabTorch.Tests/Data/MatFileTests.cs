using DeepLabTorch.Data;
using Xunit;

namespace DeepLabTorch.Tests.Data;

public class MatFileTests
{
    [LinuxTheory(LinuxOnly.Python)]
    [InlineData("u8_plain.mat")]
    [InlineData("u8_zlib.mat")]
    [InlineData("f64_zlib.mat")]
    [InlineData("f64_plain.mat")]
    public void ScipySavematReadsBack(string file)
    {
        var (mask, h, w) = MatFile.ReadSbdSegmentation(Path.Combine(DataTestUtil.MatFixtures, file));
        Assert.Equal((7, 11), (h, w));
        Assert.Equal(File.ReadAllBytes(Path.Combine(DataTestUtil.MatFixtures, "expected.bin")), mask);
    }

    [LinuxFact(LinuxOnly.Python)]
    public void MatWithoutGtclsIsNamed()
    {
        var path = Path.Combine(DataTestUtil.MatFixtures, "other.mat");
        var e = Assert.Throws<DataException>(() => MatFile.ReadSbdSegmentation(path));
        Assert.Equal(path, e.Path);
        Assert.Contains("GTcls", e.Reason);
    }

    [LinuxFact(LinuxOnly.Python)]
    public void TruncatedAndGarbageMatFilesAreDataErrors()
    {
        var dir = DataTestUtil.TempDir("badmat");
        var good = File.ReadAllBytes(Path.Combine(DataTestUtil.MatFixtures, "u8_zlib.mat"));
        var truncated = Path.Combine(dir, "t.mat");
        File.WriteAllBytes(truncated, good[..(good.Length - 40)]);
        var e1 = Assert.Throws<DataException>(() => MatFile.ReadSbdSegmentation(truncated));
        Assert.Contains("t.mat", e1.Message);
        var garbage = Path.Combine(dir, "g.mat");
        File.WriteAllBytes(garbage, new byte[300]);
        var e2 = Assert.Throws<DataException>(() => MatFile.ReadSbdSegmentation(garbage));
        Assert.Contains("MAT", e2.Reason);
        var plain = File.ReadAllBytes(Path.Combine(DataTestUtil.MatFixtures, "u8_plain.mat"));
        var cut = Path.Combine(dir, "c.mat");
        File.WriteAllBytes(cut, plain[..200]);
        var e3 = Assert.Throws<DataException>(() => MatFile.ReadSbdSegmentation(cut));
        Assert.Contains("truncated", e3.Reason);
    }
}
