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
    private async Task<(int Code, string Stdout, string Stderr, string Run)> TrainAndSignal(params string[] signals) => await TrainAndSignalWithCrop("49", signals);

    private async Task<(int Code, string Stdout, string Stderr, string Run)> TrainAndSignalWithCrop(string crop, params string[] signals)
    {
        var run = Path.Combine(_dir, "run-" + string.Join("-", signals));
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = _dir };
        foreach (var a in new[] { CliRunner.Dll, "train", "--dataset", "synthetic", "--data-root", Data, "--backbone", "mobilenet", "--lr", "0.01",
                     "--epochs", "500", "--batch-size", "4", "--crop-size", crop, "--base-size", "48", "--workers", "1", "--threads", "2",
                     "--log-interval", "1", "--output", run })
            psi.ArgumentList.Add(a);
        using var p = new Process { StartInfo = psi };
        var stdout = new System.Text.StringBuilder();
        var stderr = new System.Text.StringBuilder();
        var stopping = new SemaphoreSlim(0);
        p.OutputDataReceived += (_, e) => { lock (stdout) stdout.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) =>
        {
            lock (stderr) stderr.AppendLine(e.Data);
            if (e.Data?.Contains("stopping after this iteration", StringComparison.Ordinal) == true) stopping.Release();
        };
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        var metrics = Path.Combine(run, "metrics.jsonl");
        using (var started = new CancellationTokenSource(TimeSpan.FromSeconds(300)))
            while (!(File.Exists(metrics) && File.ReadAllText(metrics).Contains("\"type\":\"train\"")))
            {
                if (p.HasExited) lock (stdout) lock (stderr) Assert.Fail($"deeplab exited {p.ExitCode} before training:\n{stdout}\n{stderr}");
                await Task.Delay(100, started.Token);
            }
        for (int k = 0; k < signals.Length; k++)
        {
            using (var kill = Process.Start("kill", new[] { "-" + signals[k], p.Id.ToString(CultureInfo.InvariantCulture) })) kill.WaitForExit();
            // Signals sent back to back can arrive as one: the next goes once the first has been handled.
            if (k + 1 < signals.Length) Assert.True(await stopping.WaitAsync(TimeSpan.FromSeconds(300)), "the first signal was not acknowledged");
        }
        if (!p.WaitForExit(300_000))
        {
            p.Kill(true);
            lock (stdout) lock (stderr) Assert.Fail($"deeplab did not stop after {string.Join(", ", signals)}:\n{stdout}\n{stderr}");
        }
        p.WaitForExit(); // the output read to its end
        lock (stdout) lock (stderr) return (p.ExitCode, stdout.ToString(), stderr.ToString(), run);
    }

    [LinuxTheory(LinuxOnly.Signals)]
    [InlineData("INT", 130)]
    [InlineData("TERM", 143)]
    public Task EachSignalSavesAndStops(string signal, int exitCode) => SavesAndStops(signal, exitCode);

    /// <summary>SIGHUP on its own: under nohup the whole process tree ignores it, as nohup means it to, and then it is skipped.</summary>
    [SighupFact]
    public Task HupSavesAndStops() => SavesAndStops("HUP", 129);

    private async Task SavesAndStops(string signal, int exitCode)
    {
        var (code, stdout, stderr, run) = await TrainAndSignal(signal);
        Assert.True(code == exitCode, $"exit {code}:\n{stdout}\n{stderr}");
        Assert.Contains($"SIG{signal}: stopping after this iteration", stderr);
        Assert.Contains("run interrupted", stderr);
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

    [LinuxFact(LinuxOnly.Signals)]
    public async Task ASecondSignalQuitsAtOnce()
    {
        // Large crops make an iteration long next to the few milliseconds between the two signals.
        var (code, stdout, stderr, _) = await TrainAndSignalWithCrop("385", "TERM", "TERM");
        Assert.True(code == 143, $"exit {code}:\n{stdout}\n{stderr}");
        Assert.DoesNotContain("run interrupted", stderr);
    }
}

/// <summary>
/// A Linux test that sends SIGHUP to a child: skipped when this process inherited SIGHUP ignored (nohup), because the
/// child inherits that too and .NET leaves an ignored SIGHUP ignored.
/// </summary>
public sealed class SighupFactAttribute : FactAttribute
{
    public SighupFactAttribute()
    {
        if (!OperatingSystem.IsLinux()) Skip = "Linux only: " + LinuxOnly.Signals;
        else if (SighupIgnored()) Skip = "SIGHUP is ignored in this process tree (started under nohup?): a child cannot catch it";
    }

    /// <summary>Bit 0 (SIGHUP) of the SigIgn mask in /proc/self/status.</summary>
    private static bool SighupIgnored()
    {
        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        return line != null && (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & 1) != 0;
    }
}
