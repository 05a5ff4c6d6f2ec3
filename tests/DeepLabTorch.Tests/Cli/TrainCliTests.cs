using System.Globalization;
using System.Text.Json;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Data;
using DeepLabTorch.Tests.Training;
using Xunit;
using Xunit.Abstractions;

namespace DeepLabTorch.Tests.Cli;

/// <summary>
/// The end-to-end path a user takes: train on a tiny synthetic set (2 epochs, small crop), then eval
/// the checkpoint it wrote, save predictions and score them. One run shared by the tests in this class.
/// </summary>
public sealed class TrainedRunFixture : IDisposable
{
    public string Dir { get; } = ReferenceScripts.TempDir("cli-train");
    public string Data => Path.Combine(Dir, "synth");
    public string Out => Path.Combine(Dir, "run");
    public (int Code, string Stdout, string Stderr) Result { get; }

    public TrainedRunFixture()
    {
        // 24 images of 96x72: 19 train, 5 val.
        Synthetic.Generate(Data, 24, 7, "voc", 96, 72);
        Result = CliRunner.Run(Dir, "train", "--dataset", "synthetic", "--data-root", Data, "--backbone", "mobilenet",
            "--lr", "0.02", "--epochs", "2", "--batch-size", "4", "--crop-size", "65", "--base-size", "72", "--workers", "1",
            "--threads", "2", "--log-interval", "1", "--output", Out, "--checkname", "cli-test");
    }

    public void Dispose() => Directory.Delete(Dir, true);
}

public class TrainCliTests : IClassFixture<TrainedRunFixture>
{
    private readonly TrainedRunFixture _run;
    private readonly ITestOutputHelper _log;

    public TrainCliTests(TrainedRunFixture run, ITestOutputHelper log)
    {
        _run = run;
        _log = log;
    }

    private void AssertTrained()
    {
        if (_run.Result.Code != 0) _log.WriteLine(_run.Result.Stdout + "\n" + _run.Result.Stderr);
        Assert.Equal(0, _run.Result.Code);
    }

    /// <summary>Redirected output: no progress-bar frames, a line per epoch, and the run folder's train.log keeps config, epochs, evaluations and the end.</summary>
    [Fact]
    public void RedirectedOutputIsOneLinePerEventAndTrainLogKeepsTheRun()
    {
        AssertTrained();
        // Train's results are its files: stdout stays empty, and the messages are on stderr.
        Assert.Equal("", _run.Result.Stdout);
        var lines = _run.Result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.DoesNotContain(lines, l => l.Contains('\r') || l.Contains("[#"));
        Assert.Equal(2, lines.Count(l => l.StartsWith("epoch ", StringComparison.Ordinal)));
        Assert.True(lines.Length < 60, $"{lines.Length} lines on stderr:\n{_run.Result.Stderr}");
        var log = File.ReadAllText(Path.Combine(_run.Out, "train.log"));
        Assert.Contains("resolved config: {", log);
        Assert.Contains("epoch 1/2: mean loss", log);
        Assert.Contains("epoch 2/2: mean loss", log);
        Assert.Contains("validation (", log);
        Assert.Contains("run finished", log);
    }

    [Fact]
    public void TrainWritesMetricsCheckpointsReportAndTheLossGoesDown()
    {
        AssertTrained();
        var lines = File.ReadAllLines(Path.Combine(_run.Out, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var train = lines.Where(l => l.GetProperty("type").GetString() == "train").ToList();
        var evals = lines.Where(l => l.GetProperty("type").GetString() == "eval").ToList();
        Assert.Equal(8, train.Count); // 19 images / batch 4 = 4 iterations per epoch, logged every iteration
        Assert.Equal(Enumerable.Range(1, 8).Select(i => (long)i), train.Select(t => t.GetProperty("step").GetInt64()));
        Assert.All(train, t => Assert.True(t.GetProperty("lr").GetDouble() > 0 && t.GetProperty("images_per_sec").GetDouble() > 0));
        Assert.Equal(2, evals.Count);
        Assert.Equal(21, evals[0].GetProperty("class_iou").EnumerateObject().Count());
        Assert.True(evals[0].GetProperty("class_iou").TryGetProperty("person", out _));

        var summary = lines.Single(l => l.GetProperty("type").GetString() == "summary");
        var first = summary.GetProperty("first_epoch_loss").GetDouble();
        var last = summary.GetProperty("last_epoch_loss").GetDouble();
        Assert.True(last < first, $"the mean training loss did not go down: epoch 1 {first}, epoch 2 {last}");

        // Poly schedule: the first step runs at the base rate, the last at (1 - 7/8)^0.9 of it.
        Assert.Equal(0.02, train[0].GetProperty("lr").GetDouble(), 12);
        Assert.Equal(0.02 * Math.Pow(1 - 7.0 / 8, 0.9), train[7].GetProperty("lr").GetDouble(), 12);

        var info = CheckpointStore.ReadInfo(Path.Combine(_run.Out, "last.safetensors"));
        Assert.NotNull(info);
        Assert.Equal(2, info!.Epoch);
        Assert.Equal(8, info.Iteration);
        Assert.Equal("mobilenet", info.Model!.Backbone);
        Assert.True(File.Exists(Path.Combine(_run.Out, "best.safetensors")));

        var html = File.ReadAllText(Path.Combine(_run.Out, "report.html"));
        Assert.Contains("<svg", html);
        Assert.Contains("data:image/png;base64,", html);
        Assert.Contains("person", html);

        var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(_run.Out, "config.json"))).RootElement;
        Assert.Equal("mobilenet", config.GetProperty("backbone").GetString());
        Assert.Equal(65, config.GetProperty("crop_size").GetInt32());
        Assert.Equal(0.02, config.GetProperty("lr").GetDouble());

        Assert.Single(Directory.GetFiles(Path.Combine(_run.Out, "tb"), "events.out.tfevents.*"));
        Assert.Contains("run finished", _run.Result.Stderr);
        Assert.Contains("best mIoU", _run.Result.Stderr);
    }

    [Fact]
    public void EvalOfTheBestCheckpointReproducesTheTrainersMIoUAndScoreAgrees()
    {
        AssertTrained();
        var lines = File.ReadAllLines(Path.Combine(_run.Out, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var best = lines.Single(l => l.GetProperty("type").GetString() == "summary").GetProperty("best_miou").GetDouble();

        var preds = Path.Combine(_run.Dir, "preds");
        var (code, stdout, stderr) = CliRunner.Run(_run.Dir, "eval", "--weights", Path.Combine(_run.Out, "best.safetensors"), "--dataset", "synthetic",
            "--data-root", _run.Data, "--json", "--save-predictions", preds, "--workers", "1");
        Assert.True(code == 0, stderr);
        var r = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(best, r.GetProperty("miou").GetDouble(), 6);
        Assert.Equal(5, r.GetProperty("images").GetInt32());
        Assert.Equal(5, Directory.GetFiles(preds, "*.png").Length);

        // Scoring the saved PNGs against the ground truth gives the same numbers without a model.
        var gt = Path.Combine(_run.Data, "VOCdevkit", "VOC2012", "SegmentationClass");
        var s = CliRunner.Run(_run.Dir, "score", "--pred", preds, "--gt", gt, "--num-classes", "21", "--allow-missing", "--json");
        Assert.True(s.Code == 0, s.Stderr);
        var sr = JsonDocument.Parse(s.Stdout).RootElement;
        Assert.Equal(r.GetProperty("miou").GetDouble(), sr.GetProperty("miou").GetDouble(), 9);
        Assert.Equal(r.GetProperty("fwiou").GetDouble(), sr.GetProperty("fwiou").GetDouble(), 9);
        Assert.Equal(19, sr.GetProperty("missing").GetInt32());

        // Without --allow-missing the missing predictions are an error that says how many and which.
        var strict = CliRunner.Run(_run.Dir, "score", "--pred", preds, "--gt", gt, "--num-classes", "21");
        Assert.Equal(2, strict.Code);
        Assert.Contains("19 of 24 ground truths have no prediction", strict.Stderr);

        // Multi-scale + flip runs and stays a valid score.
        var ms = CliRunner.Run(_run.Dir, "eval", "--weights", Path.Combine(_run.Out, "best.safetensors"), "--dataset", "synthetic",
            "--data-root", _run.Data, "--json", "--scales", "0.75,1.0", "--flip", "--workers", "1", "--max-images", "2");
        Assert.True(ms.Code == 0, ms.Stderr);
        var msr = JsonDocument.Parse(ms.Stdout).RootElement;
        Assert.Equal(2, msr.GetProperty("images").GetInt32());
        Assert.InRange(msr.GetProperty("pixel_acc").GetDouble(), 0, 1);
    }

    [LinuxFact(LinuxOnly.Signals)]
    public async Task CtrlCStopsAfterTheCurrentIterationAndSaves()
    {
        AssertTrained();
        var run = Path.Combine(_run.Dir, "interrupted");
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = _run.Dir };
        foreach (var a in new[] { CliRunner.Dll, "train", "--dataset", "synthetic", "--data-root", _run.Data, "--backbone", "mobilenet", "--lr", "0.01",
                     "--epochs", "50", "--batch-size", "4", "--crop-size", "65", "--base-size", "72", "--workers", "1", "--no-val",
                     "--log-interval", "1", "--output", run })
            psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        var metrics = Path.Combine(run, "metrics.jsonl");
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (DateTime.UtcNow < deadline && !(File.Exists(metrics) && File.ReadAllText(metrics).Contains("\"type\":\"train\"")))
            await Task.Delay(200);
        using (var kill = System.Diagnostics.Process.Start("kill", new[] { "-INT", p.Id.ToString(CultureInfo.InvariantCulture) })) kill.WaitForExit();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await p.WaitForExitAsync(timeout.Token);
        var (output, errors) = (await stdout, await stderr);
        Assert.True(p.ExitCode == 130, $"exit {p.ExitCode}: {output} {errors}");
        Assert.Contains("stopping after this iteration", errors);
        Assert.Contains("run interrupted", errors);
        var info = CheckpointStore.ReadInfo(Path.Combine(run, "last.safetensors"))!;
        Assert.True(info.Iteration >= 1);
        var summary = JsonDocument.Parse(File.ReadAllLines(metrics).Last()).RootElement;
        Assert.Equal("summary", summary.GetProperty("type").GetString());
        Assert.True(summary.GetProperty("interrupted").GetBoolean());
    }

    [Fact]
    public void ResumeContinuesFromTheCheckpointsEpoch()
    {
        AssertTrained();
        var resumed = Path.Combine(_run.Dir, "resumed");
        var (code, stdout, stderr) = CliRunner.Run(_run.Dir, "train", "--dataset", "synthetic", "--data-root", _run.Data, "--backbone", "mobilenet",
            "--lr", "0.02", "--epochs", "3", "--batch-size", "4", "--crop-size", "65", "--base-size", "72", "--workers", "1", "--no-val",
            "--resume", Path.Combine(_run.Out, "last.safetensors"), "--output", resumed);
        Assert.True(code == 0, stdout + stderr);
        Assert.Contains("after epoch 2", stderr);
        var info = CheckpointStore.ReadInfo(Path.Combine(resumed, "last.safetensors"))!;
        Assert.Equal(3, info.Epoch);
        Assert.Equal(12, info.Iteration);
        Assert.Contains("epoch 3/3", stderr);
        Assert.DoesNotContain("epoch 1/3", stderr);
    }

    [Fact]
    public void InitWeightsStartsANewRunFromACheckpoint()
    {
        AssertTrained();
        var weights = Path.Combine(_run.Out, "last.safetensors");
        string[] Args(string output, params string[] extra) => new[]
        {
            "train", "--dataset", "synthetic", "--data-root", _run.Data, "--backbone", "mobilenet", "--lr", "0.01", "--epochs", "1",
            "--batch-size", "4", "--crop-size", "65", "--base-size", "72", "--workers", "1", "--no-val", "--max-iters", "1",
            "--init-weights", weights, "--output", Path.Combine(_run.Dir, output),
        }.Concat(extra).ToArray();

        var (code, stdout, stderr) = CliRunner.Run(_run.Dir, Args("init-same"));
        Assert.True(code == 0, stdout + stderr);
        Assert.Matches(@"init: \d+ tensors from .*last\.safetensors", stderr);
        Assert.DoesNotContain("re-initialised", stderr);
        // A new run: its schedule and step count start at zero.
        var info = CheckpointStore.ReadInfo(Path.Combine(_run.Dir, "init-same", "last.safetensors"))!;
        Assert.Equal(1, info.Iteration);

        (code, stdout, stderr) = CliRunner.Run(_run.Dir, Args("init-25", "--num-classes", "25"));
        Assert.True(code == 0, stdout + stderr);
        Assert.Contains("re-initialised decoder.last_conv.8.weight: file [21, 256, 1, 1] vs model [25, 256, 1, 1]", stderr);
        Assert.Contains("classifier re-initialised for 25 classes", stderr);

        // Fewer classes than the data's labels is named up front, not left to a libtorch error mid-step.
        (code, stdout, stderr) = CliRunner.Run(_run.Dir, Args("init-3", "--num-classes", "3"));
        Assert.Equal(2, code);
        Assert.Contains("--num-classes 3 is fewer than the 21 classes", stderr);

        // A file that is no weights at all is named with the reason, and the run leaves no folder behind.
        var junk = Path.Combine(_run.Dir, "junk.pth");
        File.WriteAllText(junk, "these are not weights");
        (code, stdout, stderr) = CliRunner.Run(_run.Dir, Args("init-junk").Select(a => a == weights ? junk : a).ToArray());
        Assert.Equal(2, code);
        Assert.Contains("junk.pth: neither a PyTorch .pth (zip) nor a valid safetensors file", stderr);
        Assert.False(Directory.Exists(Path.Combine(_run.Dir, "init-junk")));

        (code, stdout, stderr) = CliRunner.Run(_run.Dir, Args("init-resnet").Select(a => a == "mobilenet" ? "resnet" : a).ToArray());
        Assert.Equal(2, code);
        var error = stderr.Trim().Split('\n')[^1]; // the error line, after what the run logged before it failed
        Assert.Contains("--backbone resnet", error);
        Assert.Contains("mobilenet", error);
        Assert.DoesNotContain("   at ", stderr);
    }
}
