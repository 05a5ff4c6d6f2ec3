using DeepLabTorch.Data;
using DeepLabTorch.Tests.Training;
using Xunit;

namespace DeepLabTorch.Tests.Data;

/// <summary>Labels that do not fit the class count stop train before its first step, with the files, the values and a count that fits.</summary>
public sealed class LabelCheckTests : IDisposable
{
    private readonly string _dir = ReferenceScripts.TempDir("labels");

    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>A folder set of 10 pairs (two classes); the masks of `bad` also hold label 3 next to 0 and 1.</summary>
    private string Folder(params int[] bad)
    {
        var root = Path.Combine(_dir, "set");
        for (int i = 0; i < 10; i++)
        {
            var mask = new byte[16 * 16];
            for (int p = 0; p < mask.Length; p++) mask[p] = (byte)(p % 16 < 8 ? 0 : 1);
            if (bad.Contains(i)) mask[5] = 3;
            ImageCodec.WriteGrayPng(Path.Combine(root, "masks", $"m{i:D2}.png"), mask, 16, 16);
            ImageCodec.WritePng(Path.Combine(root, "images", $"m{i:D2}.png"), Enumerable.Repeat((byte)90, 16 * 16 * 3).ToArray(), 16, 16);
        }
        return root;
    }

    [Fact]
    public void TrainStopsBeforeItsFirstStepNamingFilesValuesAndACountThatFits()
    {
        var root = Folder(1, 6);
        var r = DeepLabTorch.Tests.Cli.CliRunner.Run(_dir, "train", "--dataset", "folder", "--data-root", root, "--backbone", "mobilenet", "--crop-size", "16", "--base-size", "16",
            "--batch-size", "2", "--epochs", "1", "--output", Path.Combine(_dir, "run"));
        Assert.Equal(2, r.Code);
        Assert.Contains("labels outside 0-1 in 2 of 8 training masks of folder/train", r.Stderr);
        Assert.Contains("m01.png (value 3)", r.Stderr);
        Assert.Contains("m06.png (value 3)", r.Stderr);
        Assert.Contains("--num-classes 4", r.Stderr);
        Assert.False(File.Exists(Path.Combine(_dir, "run", "last.safetensors")));
    }

    [Fact]
    public void CleanLabelsPassAndTooFewClassesAreNamed()
    {
        var clean = new CelebAMaskHqDataset(SyntheticTree(), "train");
        LabelCheck.Run(clean, 19);   // no exception
        var e = Assert.Throws<UserException>(() => LabelCheck.Run(clean, 2));
        Assert.Contains("labels outside 0-1 in 4 of 4 training masks", e.Message);
        Assert.Matches("--num-classes 1[789] ", e.Message);
    }

    [Fact]
    public void ALargeSetIsSampledAndSaysSo()
    {
        var set = new Counting(1000);
        var e = Assert.Throws<UserException>(() => LabelCheck.Run(set, 2));
        Assert.Equal(LabelCheck.SampleSize, set.Loads);
        Assert.Contains($"of {LabelCheck.SampleSize} sampled of 1000 training masks", e.Message);
    }

    /// <summary>Masks whose only label is 5; counts the loads.</summary>
    private sealed class Counting(int count) : ISegmentationDataset
    {
        public int Loads;
        public string Name => "counting";
        public int Count => count;
        public IReadOnlyList<string> ClassNames { get; } = new[] { "a", "b" };
        public SegmentationSample Load(int index)
        {
            Loads++;
            return new SegmentationSample { Id = $"s{index}", Height = 1, Width = 1, Image = new byte[3], Mask = new byte[] { 5 } };
        }
    }

    private string SyntheticTree()
    {
        var root = Path.Combine(_dir, "faces");
        SyntheticFaces.Generate(root, 5, 2, 32);
        return root;
    }
}
