using System.Diagnostics;

namespace DeepLabTorch.Tests;

/// <summary>A fresh folder under the system temp folder, deleted on dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "dlt-test-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }
    public string this[string name] => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, true); } catch (IOException) { }
    }
}

/// <summary>Debian's python3 (torch 1.13) running the scripts of tests/reference.</summary>
internal static class Python
{
    public const string Exe = "/usr/bin/python3";

    /// <summary>The checkout's root (the folder holding DeepLabTorch.sln) above the test binaries.</summary>
    public static string RepoRoot
    {
        get
        {
            var d = new DirectoryInfo(AppContext.BaseDirectory);
            while (d != null && !File.Exists(System.IO.Path.Combine(d.FullName, "DeepLabTorch.sln"))) d = d.Parent;
            return d?.FullName ?? throw new InvalidOperationException("repository root not found above " + AppContext.BaseDirectory);
        }
    }

    public static string ReferenceDir => System.IO.Path.Combine(RepoRoot, "tests", "reference");

    /// <summary>A fresh folder dlt-PREFIX-GUID under the system temp folder; the caller deletes it.</summary>
    public static string NewTempDir(string prefix)
    {
        var dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"dlt-{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>Runs a script from tests/reference; fails the test with its output when it fails.</summary>
    public static string Run(string script, params string[] args) => RunProcess(Exe, new[] { System.IO.Path.Combine(ReferenceDir, script) }.Concat(args).ToArray());

    /// <summary>
    /// Runs a process and returns its stdout; a non-zero exit throws InvalidOperationException with the
    /// output, a timeout TimeoutException. ompThreads sets OMP_NUM_THREADS (null leaves the environment's);
    /// workingDirectory, where it runs (null: this process's).
    /// </summary>
    public static string RunProcess(string exe, string[] args, int timeoutSeconds = 120, int? ompThreads = 1, string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workingDirectory is not null) psi.WorkingDirectory = workingDirectory;
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (ompThreads is int n) psi.Environment["OMP_NUM_THREADS"] = n.ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutSeconds * 1000))
        {
            p.Kill(true);
            throw new TimeoutException($"{exe} {string.Join(" ", args)} timed out after {timeoutSeconds} s");
        }
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{exe} {string.Join(" ", args)} failed ({p.ExitCode}):\n{stdout.Result}\n{stderr.Result}");
        return stdout.Result;
    }

    public static float[] ReadFloats(string path)
    {
        var b = File.ReadAllBytes(path);
        var f = new float[b.Length / 4];
        Buffer.BlockCopy(b, 0, f, 0, b.Length);
        return f;
    }

    public static void WriteFloats(string path, float[] values)
    {
        var b = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, b, 0, b.Length);
        File.WriteAllBytes(path, b);
    }
}

