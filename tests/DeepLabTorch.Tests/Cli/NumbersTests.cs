using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using DeepLabTorch.Data;
using DeepLabTorch.Tests.Training;
using Xunit;

namespace DeepLabTorch.Tests.Cli;

/// <summary>One set of numbers: epochs from 1 in metrics.jsonl and TensorBoard, a report that plots what metrics.jsonl holds over a resumed run, and progress cut to the terminal.</summary>
public sealed class NumbersTests : IDisposable
{
    private readonly string _dir = ReferenceScripts.TempDir("cli-numbers");
    private string Data => Path.Combine(_dir, "synth");

    public NumbersTests() => Synthetic.Generate(Data, 10, 4, "voc", 64, 48); // 8 train (2 batches of 4), 2 val

    public void Dispose() => Directory.Delete(_dir, true);

    private string[] TrainArgs(string run, params string[] extra) => new[]
    {
        "train", "--dataset", "synthetic", "--data-root", Data, "--backbone", "mobilenet", "--lr", "0.01", "--batch-size", "4",
        "--crop-size", "49", "--base-size", "48", "--workers", "1", "--threads", "2", "--log-interval", "1", "--epochs", "2", "--output", run,
    }.Concat(extra).ToArray();

    [LinuxFact(LinuxOnly.Python)]
    public void EpochsCountFromOneAndTheReportPlotsTheWholeResumedRun()
    {
        var run = Path.Combine(_dir, "run");
        var first = CliRunner.Run(_dir, TrainArgs(run, "--max-iters", "3"));
        Assert.True(first.Code == 0, first.Stdout + first.Stderr);
        var resumed = CliRunner.Run(_dir, "train", "--resume", Path.Combine(run, "last.safetensors"));
        Assert.True(resumed.Code == 0, resumed.Stdout + resumed.Stderr);

        var records = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var train = records.Where(r => r.GetProperty("type").GetString() == "train").ToList();
        Assert.Equal(new long[] { 1, 2, 3, 4 }, train.Select(t => t.GetProperty("step").GetInt64()));
        Assert.Equal(new[] { 1, 1, 2, 2 }, train.Select(t => t.GetProperty("epoch").GetInt32()));
        var evals = records.Where(r => r.GetProperty("type").GetString() == "eval").Select(e => e.GetProperty("epoch").GetInt32()).ToList();
        Assert.Equal(1, evals[0]);
        Assert.Equal(2, evals[^1]);

        // TensorBoard's epoch scalars are at epochs 1 and 2 too (two event files: one per process).
        var steps = new List<(string Tag, long Step)>();
        foreach (var file in Directory.GetFiles(Path.Combine(run, "tb")))
            foreach (var e in JsonDocument.Parse(ReferenceScripts.Run("train_tfevents.py", file)).RootElement.EnumerateArray())
                if (e.TryGetProperty("values", out var values) && values.ValueKind == JsonValueKind.Array && values.GetArrayLength() > 0)
                    steps.Add((values[0].GetProperty("tag").GetString()!, e.GetProperty("step").GetInt64()));
        Assert.Equal(new long[] { 1, 2 }, steps.Where(s => s.Tag == "train/total_loss_epoch").Select(s => s.Step).Distinct().Order()); // the stopped epoch 2 logs its partial mean too
        Assert.Equal(2, steps.Where(s => s.Tag == "val/mIoU").Max(s => s.Step));
        Assert.Equal(1, steps.Where(s => s.Tag == "val/mIoU").Min(s => s.Step));

        // The report's raw loss line is metrics.jsonl's per-iteration losses, from before the resume too, with a smoothed line over it.
        var html = File.ReadAllText(Path.Combine(run, "report.html"));
        var raw = Regex.Match(html, "class=\"raw\"[^>]*points=\"([^\"]*)\"");
        Assert.True(raw.Success, "no raw loss line in the report");
        Assert.Equal(train.Count, raw.Groups[1].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Matches("class=\"smoothed\"[^>]*points=\"[^\"]+\"", html);
        Assert.Contains("Per-class IoU (validation after epoch 2)", html);
    }

    [LinuxFact(LinuxOnly.Terminal)]
    public void TheProgressLineFitsTheTerminal()
    {
        // A real terminal of 60 columns, through script(1): every redrawn frame is at most 59 characters.
        var run = Path.Combine(_dir, "tty");
        var (code, output) = CliRunner.RunInTerminal(_dir, 60, TrainArgs(run));
        Assert.True(code == 0, output);
        var frames = output.Split('\r').Skip(1).Select(s => s.Split('\n')[0]).Where(s => s.Contains("epoch 1/2 [", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(frames);
        Assert.All(frames, f => Assert.True(f.Length <= 59, $"{f.Length} columns: '{f}'"));
    }
}
