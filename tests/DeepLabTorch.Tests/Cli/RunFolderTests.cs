using System.Text.Json;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Data;
using DeepLabTorch.Tests.Training;
using Xunit;

namespace DeepLabTorch.Tests.Cli;

/// <summary>One folder per run, and --resume from the checkpoint alone, through the real deeplab process on a tiny set.</summary>
public sealed class RunFolderTests : IDisposable
{
    private readonly string _dir = ReferenceScripts.TempDir("cli-runs");
    private string Data => Path.Combine(_dir, "synth");

    public RunFolderTests() => Synthetic.Generate(Data, 10, 4, "voc", 64, 48); // 8 train (2 batches of 4), 2 val

    public void Dispose() => Directory.Delete(_dir, true);

    private (int Code, string Stdout, string Stderr) Train(string output, params string[] extra) =>
        CliRunner.Run(_dir, new[]
        {
            "train", "--dataset", "synthetic", "--data-root", Data, "--backbone", "mobilenet", "--lr", "0.01", "--batch-size", "4",
            "--crop-size", "49", "--base-size", "48", "--workers", "1", "--threads", "2", "--log-interval", "1", "--output", output,
        }.Concat(extra).ToArray());

    private static void Ok((int Code, string Stdout, string Stderr) r) => Assert.True(r.Code == 0, $"exit {r.Code}:\n{r.Stdout}\n{r.Stderr}");

    /// <summary>
    /// The one error line: the last on stderr, and the only one from Program ("deeplab: "); the lines above it are
    /// the messages the verb logged before it failed, which go to stderr as well.
    /// </summary>
    private static string ErrorLine(string stderr)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines, l => l.StartsWith("deeplab", StringComparison.Ordinal));
        Assert.StartsWith("deeplab: ", lines[^1]);
        return lines[^1];
    }

    private static JsonElement LastRecord(string run) => JsonDocument.Parse(File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Last()).RootElement;

    [Fact]
    public void ANewRunNeverWritesIntoAnotherRunsFolder()
    {
        var run = Path.Combine(_dir, "run");
        Ok(Train(run, "--epochs", "1"));
        Assert.True(File.Exists(Path.Combine(run, "best.safetensors")));
        var metrics = File.ReadAllText(Path.Combine(run, "metrics.jsonl"));
        File.WriteAllText(Path.Combine(run, "notes.txt"), "mine");

        // The same command again: refused, naming both ways on, and nothing touched.
        var again = Train(run, "--epochs", "1", "--no-val");
        Assert.Equal(2, again.Code);
        var line = ErrorLine(again.Stderr);
        Assert.Contains("already holds a run", line);
        Assert.Contains("--resume " + Path.Combine(run, "last.safetensors"), line);
        Assert.Contains("--overwrite", line);
        Assert.Equal(metrics, File.ReadAllText(Path.Combine(run, "metrics.jsonl")));

        // --overwrite: the earlier run's files go (best.safetensors included), the user's stay, and the
        // summary of a run that never validated names only what it wrote.
        var fresh = Train(run, "--epochs", "1", "--no-val", "--overwrite");
        Ok(fresh);
        Assert.Contains("--overwrite: removed", fresh.Stderr);
        Assert.False(File.Exists(Path.Combine(run, "best.safetensors")));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(run, "notes.txt")));
        Assert.Single(Directory.GetFiles(Path.Combine(run, "tb")));
        var summary = LastRecord(run);
        Assert.Equal(JsonValueKind.Null, summary.GetProperty("best_checkpoint").ValueKind);
        Assert.DoesNotContain("best.safetensors", fresh.Stderr[fresh.Stderr.IndexOf("run finished", StringComparison.Ordinal)..]);
        Assert.Single(File.ReadAllLines(Path.Combine(run, "metrics.jsonl")), l => l.Contains("\"type\":\"summary\""));
    }

    [Fact]
    public void ResumeNeedsOnlyTheCheckpoint()
    {
        var run = Path.Combine(_dir, "run");
        Ok(Train(run, "--epochs", "2", "--max-iters", "2", "--no-val", "--seed", "3"));
        var last = Path.Combine(run, "last.safetensors");
        Assert.Equal(1, CheckpointStore.ReadInfo(last)!.Epoch);

        // From another folder, with nothing but the checkpoint: data set, root, model, schedule and folder come from it.
        var elsewhere = Directory.CreateDirectory(Path.Combine(_dir, "elsewhere")).FullName;
        var r = CliRunner.Run(elsewhere, "train", "--resume", last, "--workers", "2");
        Ok(r);
        Assert.Contains("after epoch 1", r.Stderr);
        Assert.Contains("epoch 2/2", r.Stderr);
        Assert.Contains("mobilenet OS16 on synthetic", r.Stderr);
        Assert.Contains("workers 1 → 2", r.Stderr); // the flag given is logged as an override
        var info = CheckpointStore.ReadInfo(last)!;
        Assert.Equal(2, info.Epoch);
        Assert.Equal(4, info.Iteration);
        Assert.False(Directory.Exists(Path.Combine(elsewhere, "checkpoints")));

        // A finished run has nothing to do.
        r = CliRunner.Run(elsewhere, "train", "--resume", last);
        Ok(r);
        Assert.Contains("nothing to do", r.Stderr);
        Assert.Equal(4, CheckpointStore.ReadInfo(last)!.Iteration);

        // A flag overrides the record, and the log says so.
        r = CliRunner.Run(elsewhere, "train", "--resume", last, "--epochs", "3", "--max-iters", "5");
        Ok(r);
        Assert.Contains("epochs 2 → 3", r.Stderr);
        Assert.Equal(5, CheckpointStore.ReadInfo(last)!.Iteration);
    }

    [Theory]
    [InlineData("--backbone", "resnet", "holds a mobilenet model")]
    [InlineData("--out-stride", "8", "output stride 16")]
    [InlineData("--num-classes", "5", "predicts 21 classes")]
    public void AFlagThatContradictsTheWeightsIsOneLine(string flag, string value, string expected)
    {
        var run = Path.Combine(_dir, "run");
        Ok(Train(run, "--epochs", "2", "--max-iters", "1", "--no-val"));
        var r = CliRunner.Run(_dir, "train", "--resume", Path.Combine(run, "last.safetensors"), flag, value);
        Assert.Equal(2, r.Code);
        var line = ErrorLine(r.Stderr);
        Assert.Contains($"{flag} {value} contradicts last.safetensors", line);
        Assert.Contains(expected, line);
        Assert.True(line.Length < 200, line);
    }
}
