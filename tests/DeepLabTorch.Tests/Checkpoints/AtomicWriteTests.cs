using System.Diagnostics;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Extensions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Checkpoints;

public class AtomicWriteTests
{
    private static string Cli => Path.Combine(AppContext.BaseDirectory, "deeplab.dll");

    private static void WriteWeights(string path, float value)
    {
        using var t = full(new long[] { 64, 64 }, value);
        Safetensors.Write(path, new Dictionary<string, Tensor> { ["w"] = t }, new Dictionary<string, string> { ["v"] = value.ToString(System.Globalization.CultureInfo.InvariantCulture) });
    }

    private static float ReadWeight(string path)
    {
        using var f = Safetensors.Read(path);
        return f.Tensors["w"].mean().item<float>();
    }

    [Fact]
    public void AProcessKilledBeforeTheRenameLeavesThePreviousFileIntact()
    {
        using var dir = new TempDir();
        var target = dir["last.safetensors"];
        var source = dir["new.safetensors"];
        WriteWeights(target, 1f);
        WriteWeights(source, 2f);

        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { Cli, "export", "--weights", source, "--format", "safetensors", "--output", target }) psi.ArgumentList.Add(a);
        psi.Environment[AtomicFile.TestHookVariable] = "pause-before-rename";
        var err = new System.Text.StringBuilder();
        using var p = new Process { StartInfo = psi };
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (err) err.AppendLine(e.Data);
        };
        p.Start();
        p.BeginErrorReadLine();
        try
        {
            // Wait until the writer has written and fsynced the temp file and is about to rename it (its marker file appears).
            var clock = Stopwatch.StartNew();
            bool reached = false;
            while (!reached && !p.HasExited && clock.Elapsed < TimeSpan.FromSeconds(90))
            {
                reached = Directory.GetFiles(dir.Path, "*.paused").Length > 0;
                if (!reached) Thread.Sleep(50);
            }
            string log;
            lock (err) log = err.ToString();
            Assert.True(reached, "the child did not reach the hook: " + log);
            var temps = Directory.GetFiles(dir.Path).Where(f => Path.GetFileName(f).StartsWith(".last.safetensors.", StringComparison.Ordinal) && f.EndsWith(".tmp", StringComparison.Ordinal)).ToList();
            Assert.Single(temps);
            Assert.True(new FileInfo(temps[0]).Length > 64 * 64 * 4, "the temp file should be completely written");
        }
        finally
        {
            if (!p.HasExited) p.Kill();
            Assert.True(p.WaitForExit(30_000), "the child did not die");
        }
        Assert.Equal(1f, ReadWeight(target)); // the old checkpoint still loads, unchanged

        // Without the hook the same command replaces the file.
        Python.RunProcess("dotnet", new[] { Cli, "export", "--weights", source, "--format", "safetensors", "--output", target });
        Assert.Equal(2f, ReadWeight(target));
    }

    [Fact]
    public void AFullDiskIsAClearErrorAndTheOldFileStays()
    {
        using var dir = new TempDir();
        var target = dir["best.safetensors"];
        WriteWeights(target, 1f);
        using var t = ones(128, 128);
        var e = Assert.Throws<UserException>(() => AtomicFile.Write(target, s =>
        {
            // The same path the hook takes, but on this thread only: a stream that fails like ENOSPC.
            s.Write(new byte[1000]);
            throw new IOException("No space left on device", 28);
        }));
        Assert.Contains("the disk is full", e.Message);
        Assert.Contains(target, e.Message);
        Assert.Equal(1f, ReadWeight(target));
        Assert.DoesNotContain(Directory.GetFiles(dir.Path), f => f.EndsWith(".tmp", StringComparison.Ordinal));
    }

    [Fact]
    public void TheEnospcHookFailsAChildsWriteCleanly()
    {
        using var dir = new TempDir();
        var target = dir["last.safetensors"];
        var source = dir["new.safetensors"];
        WriteWeights(target, 1f);
        WriteWeights(source, 2f);
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { Cli, "export", "--weights", source, "--output", target }) psi.ArgumentList.Add(a);
        psi.Environment[AtomicFile.TestHookVariable] = "enospc-after-bytes:100";
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.Equal(2, p.ExitCode);
        Assert.Contains("the disk is full", err);
        Assert.Equal(1f, ReadWeight(target));
        Assert.DoesNotContain(Directory.GetFiles(dir.Path), f => f.EndsWith(".tmp", StringComparison.Ordinal));
    }

    [Fact]
    public void AnUnwritableFolderIsAClearError()
    {
        using var dir = new TempDir();
        using var t = ones(2);
        var tensors = new Dictionary<string, Tensor> { ["w"] = t };
        var e = Assert.Throws<UserException>(() => Safetensors.Write(dir["missing/sub/x.safetensors"], tensors, null));
        Assert.Contains("does not exist", e.Message);
        File.WriteAllText(dir["afile"], "");
        e = Assert.Throws<UserException>(() => Safetensors.Write(dir["afile/x.safetensors"], tensors, null));
        Assert.Contains("is a file, not a folder", e.Message);
    }
}
