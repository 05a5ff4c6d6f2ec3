using DeepLabTorch.Cli;
using DeepLabTorch.Data;
using DeepLabTorch.Tests.Training;
using Xunit;

namespace DeepLabTorch.Tests.Cli;

/// <summary>Bad flags, bad combinations and bad data give one clear line (exit code 2), never a stack trace.</summary>
public class CliErrorTests : IDisposable
{
    private readonly string _dir = ReferenceScripts.TempDir("cli-errors");

    public void Dispose() => Directory.Delete(_dir, true);

    private (int Code, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = Program.Run(args, stdout, stderr);
        return (code, stderr.ToString());
    }

    /// <summary>
    /// The error is one line, the last on stderr and the only one from Program; lines above it can only be what
    /// the verb logged before it failed (stderr carries log messages too), never a stack trace.
    /// </summary>
    private static void OneLine(string err, params string[] parts)
    {
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines, l => l.StartsWith("deeplab", StringComparison.Ordinal));
        Assert.StartsWith("deeplab: ", lines[^1]);
        foreach (var p in parts) Assert.Contains(p, lines[^1]);
        Assert.DoesNotContain("   at ", err);
    }

    private string Out => Path.Combine(_dir, "out");

    [Theory]
    [InlineData(new[] { "train", "--backbone", "vgg" }, "--backbone", "vgg")]
    [InlineData(new[] { "train", "--out-stride", "32" }, "--out-stride", "32")]
    [InlineData(new[] { "train", "--loss-type", "hinge" }, "--loss-type")]
    [InlineData(new[] { "train", "--lr-scheduler", "step" }, "--lr-step")]
    [InlineData(new[] { "train", "--ft" }, "--resume")]
    [InlineData(new[] { "train", "--init-weights", "a.pth", "--resume", "b.safetensors" }, "--init-weights", "--resume")]
    [InlineData(new[] { "train", "--use-sbd", "--dataset", "synthetic" }, "--use-sbd")]
    [InlineData(new[] { "train", "--no-cuda", "--device", "cuda:0" }, "--no-cuda")]
    [InlineData(new[] { "train", "--lr", "-1" }, "--lr")]
    [InlineData(new[] { "train", "--epochs", "0" }, "--epochs")]
    [InlineData(new[] { "train", "--gpu-ids", "a,b" }, "--gpu-ids")]
    [InlineData(new[] { "eval", "--weights", "x.safetensors", "--scales", "0.5,abc" }, "--scales", "abc")]
    [InlineData(new[] { "score", "--pred", "/nonexistent/p", "--gt", "/nonexistent/g", "--num-classes", "21" }, "--pred", "/nonexistent/p")]
    [InlineData(new[] { "score", "--pred", ".", "--gt", ".", "--num-classes", "1" }, "--num-classes")]
    public void BadValuesAndCombinationsGiveOneLine(string[] args, params string[] expected)
    {
        var (code, err) = Run(args);
        Assert.Equal(2, code);
        OneLine(err, expected);
    }

    [Fact]
    public void UnknownFlagsAreRejectedWithUsage()
    {
        var (code, err) = Run("train", "--bogus-flag", "3");
        Assert.Equal(2, code);
        var line = Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("deeplab train: ", line);
        Assert.Contains("bogus-flag", line);
        Assert.Contains("deeplab train --help", line);
    }

    [Theory]
    [InlineData(new[] { "train", "--lr", "abc" }, "--lr expects a number, got 'abc'")]
    [InlineData(new[] { "train", "--epochs", "2.5" }, "--epochs expects a whole number, got '2.5'")]
    [InlineData(new[] { "predict", "--weights", "w", "--input", "i", "--output", "o", "--batch-size=x" }, "--batch-size expects a whole number, got 'x'")]
    public void AValueOfTheWrongTypeIsNamedWithTheFlag(string[] args, string expected)
    {
        var (code, err) = Run(args);
        Assert.Equal(2, code);
        var line = Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains(expected, line);
    }

    [Fact]
    public void AnUnknownVerbIsNamedInOneLine()
    {
        var (code, err) = Run("trian", "--lr", "0.1");
        Assert.Equal(2, code);
        var line = Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("trian", line);
        Assert.Contains("deeplab --help", line);
    }

    [Fact]
    public void HelpIsNotAnError()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        Assert.Equal(0, Program.Run(new[] { "train", "--help" }, stdout, stderr));
        Assert.Contains("--backbone", stdout.ToString());
        Assert.Contains("--lr-scheduler", stdout.ToString());
        Assert.Equal("", stderr.ToString());

        var version = new StringWriter();
        Assert.Equal(0, Program.Run(new[] { "--version" }, version, stderr));
        Assert.Matches(@"^deeplab \S+ \(TorchSharp \d+\.\d+\.\d+, libtorch \d+\.\d+", version.ToString());
    }

    [Fact]
    public void AConfigFileWithAnUnknownKeyIsNamed()
    {
        var cfg = Path.Combine(_dir, "bad.json");
        File.WriteAllText(cfg, """{ "backbone": "mobilenet", "learning_rate": 0.1 }""");
        var (code, err) = Run("train", "--config", cfg);
        Assert.Equal(2, code);
        OneLine(err, "bad.json", "learning_rate");
    }

    [Fact]
    public void AMissingDataRootSaysWhatWasLookedFor()
    {
        var missing = Path.Combine(_dir, "no-such-voc");
        var (code, err) = Run("train", "--dataset", "pascal", "--data-root", missing, "--backbone", "mobilenet", "--output", Out);
        Assert.Equal(2, code);
        OneLine(err, missing);

        var empty = Path.Combine(_dir, "empty");
        Directory.CreateDirectory(empty);
        (code, err) = Run("train", "--dataset", "pascal", "--data-root", empty, "--backbone", "mobilenet", "--output", Out);
        Assert.Equal(2, code);
        OneLine(err, empty, "JPEGImages");
        Assert.False(Directory.Exists(Out), "a failed start must not leave a run folder behind");
    }

    [Fact]
    public void ADatasetSmallerThanABatchSaysSo()
    {
        var data = Path.Combine(_dir, "tiny");
        Synthetic.Generate(data, 6, 3, "voc", 48, 40); // 5 train, 1 val
        var (code, err) = Run("train", "--dataset", "synthetic", "--data-root", data, "--backbone", "mobilenet", "--batch-size", "8", "--output", Out);
        Assert.Equal(2, code);
        OneLine(err, "5 images", "batch of 8");
    }

    [Fact]
    public void BatchOfOneWithoutFrozenBatchNormIsRejected()
    {
        var data = Path.Combine(_dir, "tiny1");
        Synthetic.Generate(data, 4, 3, "voc", 48, 40);
        var (code, err) = Run("train", "--dataset", "synthetic", "--data-root", data, "--backbone", "mobilenet", "--batch-size", "1", "--output", Out);
        Assert.Equal(2, code);
        OneLine(err, "--batch-size 1", "--freeze-bn");
    }
}

public class NonFiniteLossTests
{
    [Fact]
    public void ANonFiniteLossStopsTrainingNamingTheIteration()
    {
        var dir = ReferenceScripts.TempDir("nan");
        try
        {
            var data = Path.Combine(dir, "synth");
            Synthetic.Generate(data, 12, 5, "voc", 96, 72);
            // An absurd learning rate blows the weights up after the first update.
            var (code, stdout, stderr) = CliRunner.Run(dir, "train", "--dataset", "synthetic", "--data-root", data, "--backbone", "mobilenet",
                "--lr", "1e12", "--epochs", "3", "--batch-size", "4", "--crop-size", "65", "--base-size", "72", "--workers", "1", "--no-val",
                "--output", Path.Combine(dir, "run"));
            Assert.Equal(1, code);
            Assert.Matches(@"the loss became (NaN|-?Infinity|∞|-∞) at iteration \d+ \(epoch \d+, batch \d+\)", stderr);
            Assert.DoesNotContain("   at ", stderr);
            Assert.DoesNotContain("run finished", stderr);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
