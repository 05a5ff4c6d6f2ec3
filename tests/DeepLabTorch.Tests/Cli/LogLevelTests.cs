using DeepLabTorch.Checkpoints;
using DeepLabTorch.Cli;
using DeepLabTorch.Data;
using DeepLabTorch.Extensions;
using DeepLabTorch.Inference;
using DeepLabTorch.Tests.Inference;
using Xunit;

namespace DeepLabTorch.Tests.Cli;

/// <summary>
/// What every verb's tests share: a synthetic VOC set (5 train, 1 val at 64x48), two photos, a random-weight
/// 21-class MobileNet checkpoint, and the same weights as a plain state dict without num_batches_tracked (as
/// PyTorch before 0.4.1 wrote it), whose load logs a note.
/// </summary>
public sealed class LogLevelFixture : IDisposable
{
    public string Dir { get; } = InferenceTestUtil.TempDir("log-level");
    public string Data => Path.Combine(Dir, "synth");
    public string Photos => Path.Combine(Dir, "photos");
    public string Weights { get; }
    public string PlainStateDict => Path.Combine(Dir, "plain.safetensors");

    public LogLevelFixture()
    {
        Synthetic.Generate(Data, 6, 3, "voc", 64, 48);
        Directory.CreateDirectory(Photos);
        for (int i = 0; i < 2; i++)
            ImageCodec.WritePng(Path.Combine(Photos, $"p{i}.png"), InferenceTestUtil.TestImage(40, 56, i), 40, 56);
        Weights = PredictVerbTests.SaveModel(Dir, 21, VocClasses.Names.ToArray(), out var model);
        using (model)
        {
            var plain = model.StateDictInOrder().Where(kv => !kv.Key.EndsWith(".num_batches_tracked", StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key, kv => kv.Value);
            Safetensors.Write(PlainStateDict, plain);
        }
    }

    public void Dispose() => Directory.Delete(Dir, true);
}

/// <summary>
/// `--log-level warning` silences every informational line of each verb, and only those: stdout (results)
/// is the same at both levels, and stderr keeps nothing but warnings and errors. Each verb runs in-process at
/// the default level too, where (for the verbs that have any) an informational line does appear, so the test
/// can fail. Progress bars are not messages (--quiet turns them off) and go to the process's own stderr.
/// </summary>
public class LogLevelTests(LogLevelFixture f) : IClassFixture<LogLevelFixture>
{
    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private sealed record Run(int Code, string Stdout, string Stderr)
    {
        /// <summary>stderr's lines that are not warnings or errors: information, debug and trace messages.</summary>
        public string[] InfoLines => Lines(Stderr).Where(l => !l.StartsWith("warning: ", StringComparison.Ordinal) && !l.StartsWith("error: ", StringComparison.Ordinal)).ToArray();

        public override string ToString() => $"exit {Code}\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}";
    }

    private static Run Deeplab(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr);
        return new Run(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>
    /// Runs the verb at the default level and with --log-level warning (args gets "default" or "warning" to
    /// keep their outputs apart). Returns both runs after the shared checks.
    /// </summary>
    private static (Run Default, Run Warning) AtBothLevels(Func<string, string[]> args, bool logsInformation)
    {
        var loud = Deeplab(args("default"));
        Assert.True(loud.Code == 0, loud.ToString());
        if (logsInformation) Assert.True(loud.InfoLines.Length > 0, "no informational line at the default level, so silencing it proves nothing:\n" + loud);

        var quiet = Deeplab([.. args("warning"), "--log-level", "warning"]);
        Assert.True(quiet.Code == 0, quiet.ToString());
        Assert.True(quiet.InfoLines.Length == 0, "informational lines with --log-level warning:\n" + string.Join("\n", quiet.InfoLines));
        // The level filters messages, never results: as many result lines either way.
        Assert.Equal(Lines(loud.Stdout).Length, Lines(quiet.Stdout).Length);
        return (loud, quiet);
    }

    [Fact]
    public void Train()
    {
        var (loud, _) = AtBothLevels(level => ["train", "--dataset", "synthetic", "--data-root", f.Data, "--backbone", "mobilenet", "--batch-size", "2",
            "--crop-size", "49", "--base-size", "48", "--workers", "1", "--threads", "2", "--epochs", "1", "--max-iters", "1",
            "--output", Path.Combine(f.Dir, "run-" + level)], logsInformation: true);
        Assert.Contains(loud.InfoLines, l => l.StartsWith("epoch 1/1", StringComparison.Ordinal));
        Assert.Contains(loud.InfoLines, l => l.StartsWith("validation (1 images", StringComparison.Ordinal));
        Assert.Equal("", loud.Stdout); // train's results are its files
        // train.log keeps the run whatever the console shows.
        Assert.Contains("epoch 1/1", File.ReadAllText(Path.Combine(f.Dir, "run-warning", "train.log")));
    }

    [Fact]
    public void Predict()
    {
        var (loud, quiet) = AtBothLevels(level => ["predict", "--weights", f.Weights, "--input", f.Photos, "--output", Path.Combine(f.Dir, "predict-" + level),
            "--device", "cpu", "--threads", "2"], logsInformation: true);
        Assert.Contains(loud.InfoLines, l => l.StartsWith("predict: 2 image(s), mobilenet OS16", StringComparison.Ordinal));
        Assert.StartsWith("predict: 2 image(s) in ", quiet.Stdout);
    }

    [Fact]
    public void Matte()
    {
        var (loud, quiet) = AtBothLevels(level => ["matte", "--weights", f.Weights, "--input", f.Photos, "--output", Path.Combine(f.Dir, "matte-" + level), "--background", "#2040ff",
            "--device", "cpu", "--threads", "2"], logsInformation: true);
        Assert.Contains(loud.InfoLines, l => l.StartsWith("matte: 2 input(s), person = class 15", StringComparison.Ordinal));
        Assert.StartsWith("matte: 2 image(s), 0 video(s)", quiet.Stdout);
    }

    [Fact]
    public void Recolor()
    {
        // A VOC model recolours its "person" class: the verb's logging is what is checked here.
        var (loud, quiet) = AtBothLevels(level => ["recolor", "--weights", f.Weights, "--input", f.Photos, "--output", Path.Combine(f.Dir, "recolor-" + level),
            "--part", "person", "--color", "red", "--device", "cpu", "--threads", "2"], logsInformation: true);
        Assert.Contains(loud.InfoLines, l => l.StartsWith("recolor: 2 image(s), person to #FF0000", StringComparison.Ordinal));
        Assert.StartsWith("wrote ", quiet.Stdout);
    }

    [Fact]
    public void Eval()
    {
        var (loud, quiet) = AtBothLevels(_ => ["eval", "--weights", f.Weights, "--dataset", "synthetic", "--data-root", f.Data, "--split", "val",
            "--workers", "1", "--threads", "2"], logsInformation: true);
        Assert.Contains(loud.InfoLines, l => l.StartsWith("eval: 1 image(s) of synthetic/val", StringComparison.Ordinal));
        Assert.Contains("mIoU", quiet.Stdout);
    }

    [Fact]
    public void Export()
    {
        var (loud, quiet) = AtBothLevels(level => ["export", "--weights", f.PlainStateDict, "--format", "onnx", "--output", Path.Combine(f.Dir, $"model-{level}.onnx")],
            logsInformation: true);
        Assert.Contains(loud.InfoLines, l => l.Contains("num_batches_tracked not in the file", StringComparison.Ordinal));
        Assert.StartsWith("wrote ", quiet.Stdout);
    }

    [Fact]
    public void Bench()
    {
        // The smallest scaling run: one point, whose line is a message; the figures are the JSON result.
        var (loud, quiet) = AtBothLevels(_ => ["bench", "scaling", "crops=33", "batches=2", "threads=1", "reps=1", "--threads", "1"], logsInformation: true);
        Assert.Contains(loud.InfoLines, l => l.StartsWith("scaling: threads 1 crop 33 batch 2: infer ", StringComparison.Ordinal));
        Assert.StartsWith("{", quiet.Stdout);
    }

    /// <summary>The verbs that print results only: their stderr stays empty at the warning level, and their results stay.</summary>
    [Fact]
    public void DataScoreAndInfo()
    {
        var synth = AtBothLevels(level => ["data", "synth", "--out", Path.Combine(f.Dir, "synth-" + level), "--count", "2", "--width", "40", "--height", "32"],
            logsInformation: false);
        Assert.StartsWith("wrote 2 synthetic voc images", synth.Warning.Stdout);

        var check = AtBothLevels(_ => ["data", "check", "--dataset", "synthetic", "--data-root", f.Data, "--workers", "1"], logsInformation: false);
        Assert.NotEqual("", check.Warning.Stdout);

        var gt = Path.Combine(f.Data, "VOCdevkit", "VOC2012", "SegmentationClass");
        var score = AtBothLevels(_ => ["score", "--pred", gt, "--gt", gt, "--num-classes", "21"], logsInformation: false);
        Assert.Contains("predictions scored against", score.Warning.Stdout);

        var info = AtBothLevels(_ => ["info", "--threads", "2"], logsInformation: false);
        Assert.Contains("libtorch ", info.Warning.Stdout);
        Assert.Equal("", info.Warning.Stderr);
    }
}
