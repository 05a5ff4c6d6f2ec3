using DeepLabTorch.Data;
using DeepLabTorch.Tests.Data;
using DeepLabTorch.Tests.Inference;
using DeepLabTorch.Tests.Training;
using Xunit;

namespace DeepLabTorch.Tests.Cli;

/// <summary>
/// Nothing typed is dropped silently: stray words, switch values, value-less options, the reference's
/// spellings, several --input paths, help at every level and file-system mistakes, all through the real
/// deeplab process.
/// </summary>
public sealed class StrictArgumentsTests : IDisposable
{
    private readonly string _dir = ReferenceScripts.TempDir("cli-strict");

    public void Dispose() => Directory.Delete(_dir, true);

    private (int Code, string Stdout, string Stderr) Run(params string[] args) => CliRunner.Run(_dir, args);

    /// <summary>One line on stderr in the usage format, exit code 2.</summary>
    private static string UsageError((int Code, string Stdout, string Stderr) r, string verb)
    {
        Assert.True(r.Code == 2, $"exit {r.Code}: {r.Stdout} {r.Stderr}");
        var line = Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"deeplab {verb}: ", line);
        Assert.EndsWith($"(deeplab {verb} --help lists its options)", line);
        return line;
    }

    private static void NoRawDotNetMessage(string stderr)
    {
        Assert.DoesNotContain("Could not find a part of the path", stderr);
        Assert.DoesNotContain("already exists.", stderr);
        Assert.DoesNotContain("   at ", stderr);
    }

    private string MissingRoot => Path.Combine(_dir, "no-such-voc");

    [Fact]
    public void StrayWordsAreErrorsNamingTheFirst()
    {
        var line = UsageError(Run("train", "--dataset", "synthetic", "stray", "words", "here"), "train");
        Assert.Contains("unexpected argument 'stray'", line);
        line = UsageError(Run("eval", "--weights", "w.safetensors", "extra"), "eval");
        Assert.Contains("'extra'", line);
    }

    [Fact]
    public void BenchTakesEverySetting()
    {
        // bench's settings are one positional sequence: every key=value word belongs to it (scripts/bench.sh passes several).
        var r = Run("bench", "model", "forward_size=65", "nonsense_key=1");
        Assert.Equal(2, r.Code);
        Assert.Contains("unknown setting 'nonsense_key'", r.Stderr);
    }

    [Theory]
    [InlineData("--lr")]
    [InlineData("--lr", "--epochs", "2")]
    [InlineData("--output=")]
    public void AnOptionWithoutItsValueIsAnError(params string[] tail)
    {
        var line = UsageError(Run(new[] { "train", "--dataset", "synthetic" }.Concat(tail).ToArray()), "train");
        Assert.Contains($"{tail[0].TrimEnd('=')} needs a value", line);
    }

    [Theory]
    [InlineData("False", false)]
    [InlineData("false", false)]
    [InlineData("TRUE", true)]
    [InlineData("", true)]
    public void SwitchesTakeAnOptionalTrueOrFalse(string value, bool on)
    {
        // The data root is missing: the run stops after logging the sync-bn note, or not logging it.
        var args = new List<string> { "train", "--dataset", "pascal", "--data-root", MissingRoot, "--backbone", "mobilenet", "--output", Path.Combine(_dir, "o"), "--sync-bn" };
        if (value.Length > 0) args.Add(value);
        var r = Run(args.ToArray());
        Assert.Equal(2, r.Code);
        Assert.Contains(MissingRoot, r.Stderr);
        Assert.Equal(on, r.Stderr.Contains("--sync-bn has no effect"));

        // --freeze-bn False leaves BatchNorm training, so a batch of one is refused as without the flag.
        var tiny = Path.Combine(_dir, "tiny");
        Synthetic.Generate(tiny, 4, 3, "voc", 48, 40);
        var bad = Run("train", "--dataset", "synthetic", "--data-root", tiny, "--backbone", "mobilenet", "--batch-size", "1", "--freeze-bn", "False", "--output", Path.Combine(_dir, "o"));
        Assert.Contains("--batch-size 1 cannot train BatchNorm", bad.Stderr);

        // false also turns off a switch a config file turned on.
        var config = Path.Combine(_dir, "frozen.json");
        File.WriteAllText(config, """{ "freeze_bn": true }""");
        bad = Run("train", "--config", config, "--dataset", "synthetic", "--data-root", tiny, "--backbone", "mobilenet", "--batch-size", "1",
            "--freeze-bn", "false", "--output", Path.Combine(_dir, "o"));
        Assert.Contains("--batch-size 1 cannot train BatchNorm", bad.Stderr);
    }

    [Fact]
    public void ASwitchWithAnotherValueIsNamed()
    {
        var line = UsageError(Run("train", "--freeze-bn=maybe"), "train");
        Assert.Contains("--freeze-bn is a switch", line);
        Assert.Contains("'maybe'", line);
    }

    [Fact]
    public void TheReferenceUnderscoreSpellingsAreAliases()
    {
        var r = Run("train", "--dataset", "pascal", "--data-root", MissingRoot, "--backbone", "mobilenet", "--output", Path.Combine(_dir, "o"),
            "--start_epoch", "1", "--epochs", "3", "--out_stride", "8", "--use_sbd", "--base_size", "100", "--crop_size", "90", "--sync_bn", "--freeze_bn",
            "--loss_type", "focal", "--batch_size", "2", "--test_batch_size", "1", "--use_balanced_weights", "--lr_scheduler", "cos",
            "--weight_decay", "0.0001", "--no_cuda", "--gpu_ids", "0", "--eval_interval", "1", "--no_val");
        Assert.Equal(2, r.Code);
        Assert.Contains(MissingRoot, r.Stderr); // got as far as opening the data: every spelling was accepted
        Assert.Contains("mobilenet OS8", r.Stderr);
        Assert.Contains("--sync-bn has no effect", r.Stderr);

        // The value reaches the option: --start_epoch is checked as --start-epoch.
        var bad = Run("train", "--dataset", "synthetic", "--epochs", "3", "--start_epoch", "7");
        Assert.Contains("--start-epoch must be in [0, 3)", bad.Stderr);
    }

    [LinuxFact(LinuxOnly.Python)]
    public void SeveralInputPathsAreAllPredicted()
    {
        // What a shell makes of an unquoted glob: several words after --input.
        var input = Directory.CreateDirectory(Path.Combine(_dir, "in")).FullName;
        var files = new List<string>();
        for (int i = 0; i < 3; i++)
        {
            var f = Path.Combine(input, $"img_00{i}.png");
            ImageCodec.WritePng(f, InferenceTestUtil.TestImage(40, 48, i), 40, 48);
            files.Add(f);
        }
        var weights = PredictVerbTests.SaveModel(_dir, 3, new[] { "background", "cat", "person" }, out var model);
        model.Dispose();
        var output = Path.Combine(_dir, "out");
        var r = Run(new[] { "predict", "--weights", weights, "--device", "cpu", "--quiet", "--input" }.Concat(files).Concat(new[] { "--output", output }).ToArray());
        Assert.True(r.Code == 0, r.Stderr);
        Assert.Contains("3 image(s)", r.Stdout);
        Assert.Equal(new[] { "img_000.png", "img_001.png", "img_002.png" }, Directory.GetFiles(output).Select(Path.GetFileName).Order().ToArray());

        // A quoted glob and a file together, the file named twice kept once; a CMYK JPEG is decoded, not called corrupt.
        var cmyk = Path.Combine(DataTestUtil.ImageFixtures, "cmyk.jpg");
        var both = Path.Combine(_dir, "both");
        r = Run("predict", "--weights", weights, "--device", "cpu", "--quiet", "--input", Path.Combine(input, "img_00[01].png"), files[0], cmyk, "--output", both);
        Assert.True(r.Code == 0, r.Stderr);
        Assert.Contains("3 image(s)", r.Stdout);
        Assert.DoesNotContain("corrupt", r.Stderr + r.Stdout);
        Assert.Single(Directory.GetFiles(both, "cmyk.png", SearchOption.AllDirectories));

        // A folder as --weights names the weights in it; a window too small to see anything says why.
        r = Run("predict", "--weights", _dir, "--input", files[0], "--output", output);
        Assert.Equal(2, r.Code);
        Assert.Contains("is a folder, not a weights file", r.Stderr);
        Assert.Contains("model.safetensors", r.Stderr);
        r = Run("predict", "--weights", weights, "--input", files[0], "--output", output, "--window", "10");
        Assert.Equal(2, r.Code);
        Assert.Contains("--window 10 is too small", r.Stderr);

        // Output paths blocked by a file are named in our words.
        var blocker = Path.Combine(_dir, "afile");
        File.WriteAllText(blocker, "x");
        r = Run("predict", "--weights", weights, "--device", "cpu", "--input", files[0], "--output", blocker);
        Assert.Equal(2, r.Code);
        Assert.Contains($"{blocker} is a file where a folder must go", r.Stderr);
        NoRawDotNetMessage(r.Stderr);

        // export creates the folder its file goes in.
        var exported = Path.Combine(_dir, "new", "sub", "m.safetensors");
        r = Run("export", "--weights", weights, "--output", exported);
        Assert.True(r.Code == 0, r.Stderr);
        Assert.True(File.Exists(exported));
    }

    [Fact]
    public void FileSystemErrorsNameThePathInOurWords()
    {
        var blocker = Path.Combine(_dir, "afile");
        File.WriteAllText(blocker, "x");
        var r = Run("data", "synth", "--out", Path.Combine(blocker, "sub"), "--count", "2");
        Assert.Equal(2, r.Code);
        Assert.Contains($"{blocker} is a file, not a folder", r.Stderr);
        NoRawDotNetMessage(r.Stderr);
        r = Run("data", "synth", "--out", blocker, "--count", "2");
        Assert.Equal(2, r.Code);
        Assert.Contains(blocker + " is a file", r.Stderr);
        NoRawDotNetMessage(r.Stderr);
    }

    [Theory]
    [InlineData("--backbone", "train", "--help")]
    [InlineData("--backbone", "train", "-h")]
    [InlineData("--backbone", "help", "train")]
    [InlineData("--out", "data", "synth", "--help")]
    [InlineData("--data-root", "data", "check", "-h")]
    [InlineData("--weights", "predict", "--input", "x", "--help")]
    [InlineData("train", "-h")]
    [InlineData("predict", "help")]
    [InlineData("matte", "--help")]
    public void HelpWorksAtEveryLevel(string expected, params string[] args)
    {
        var r = Run(args);
        Assert.True(r.Code == 0, r.Stderr);
        Assert.Contains(expected, r.Stdout);
        Assert.Equal("", r.Stderr);
    }

    [Fact]
    public void VersionIsAVerb()
    {
        var r = Run("version");
        Assert.Equal(0, r.Code);
        Assert.Matches(@"^deeplab \S+ \(TorchSharp \d+\.\d+\.\d+, libtorch \d+\.\d+", r.Stdout);
    }
}
