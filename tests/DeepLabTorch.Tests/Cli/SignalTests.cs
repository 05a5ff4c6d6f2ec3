using System.Diagnostics;
using System.Globalization;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Data;
using DeepLabTorch.Tests.Training;
using Xunit;

namespace DeepLabTorch.Tests.Cli;

/// <summary>Real signals to a training child process: SIGINT, SIGTERM and SIGHUP save and stop, and the exit code says which.</summary>
public sealed class SignalTests : IDisposable
{
    private readonly string _dir = ReferenceScripts.TempDir("cli-signals");
    private string Data => Path.Combine(_dir, "synth");

    public SignalTests() => Synthetic.Generate(Data, 10, 4, "voc", 64, 48);

    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>Starts a long training run, waits until it has logged an iteration, sends the signals, and waits for the exit.</summary>
    private async Task<(int Code, string Stdout, string Stderr, string Run)> TrainAndSignal(params string[] signals)
    {
        var run = Path.Combine(_dir, "run-" + string.Join("-", signals));
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = _dir };
        foreach (var a in new[] { CliRunner.Dll, "train", "--dataset", "synthetic", "--data-root", Data, "--backbone", "mobilenet", "--lr", "0.01",
                     "--epochs", "500", "--batch-size", "4", "--crop-size", "49", "--base-size", "48", "--workers", "1", "--threads", "2",
                     "--log-interval", "1", "--output", run })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        var metrics = Path.Combine(run, "metrics.jsonl");
        using (var started = new CancellationTokenSource(TimeSpan.FromSeconds(120)))
            while (!(File.Exists(metrics) && File.ReadAllText(metrics).Contains("\"type\":\"train\"")))
                await Task.Delay(100, started.Token);
        foreach (var signal in signals)
            using (var kill = Process.Start("kill", new[] { "-" + signal, p.Id.ToString(CultureInfo.InvariantCulture) })) kill.WaitForExit();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await p.WaitForExitAsync(timeout.Token);
        return (p.ExitCode, await stdout, await stderr, run);
    }

    [Theory]
    [InlineData("INT", 130)]
    [InlineData("TERM", 143)]
    [InlineData("HUP", 129)]
    public async Task EachSignalSavesAndStops(string signal, int exitCode)
    {
        var (code, stdout, stderr, run) = await TrainAndSignal(signal);
        Assert.True(code == exitCode, $"exit {code}:\n{stdout}\n{stderr}");
        Assert.Contains($"SIG{signal}: stopping after this iteration", stderr);
        Assert.Contains("run interrupted", stdout);
        var last = Path.Combine(run, "last.safetensors");
        var info = CheckpointStore.ReadInfo(last)!;
        Assert.True(info.Iteration >= 1);
        using var weights = Safetensors.Read(last); // it loads: complete, not cut off mid-write
        Assert.NotEmpty(weights.Tensors);

        // And it resumes from there.
        var resumed = CliRunner.Run(_dir, "train", "--resume", last, "--max-iters", (info.Iteration + 1).ToString(CultureInfo.InvariantCulture));
        Assert.True(resumed.Code == 0, resumed.Stdout + resumed.Stderr);
        Assert.Equal(info.Iteration + 1, CheckpointStore.ReadInfo(last)!.Iteration);
    }

    [Fact]
    public async Task ASecondSignalQuitsAtOnce()
    {
        var (code, stdout, stderr, _) = await TrainAndSignal("TERM", "TERM");
        Assert.True(code == 143, $"exit {code}:\n{stdout}\n{stderr}");
        Assert.DoesNotContain("run interrupted", stdout);
    }
}
