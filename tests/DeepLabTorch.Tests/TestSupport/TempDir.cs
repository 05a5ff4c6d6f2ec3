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

    public static string ReferenceDir
    {
        get
        {
            for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            {
                var r = System.IO.Path.Combine(d.FullName, "tests", "reference");
                if (File.Exists(System.IO.Path.Combine(r, "ckpt_tiny.py"))) return r;
            }
            throw new InvalidOperationException("tests/reference not found above " + AppContext.BaseDirectory);
        }
    }

    /// <summary>Runs a script from tests/reference; fails the test with its output when it fails.</summary>
    public static string Run(string script, params string[] args) => RunProcess(Exe, new[] { System.IO.Path.Combine(ReferenceDir, script) }.Concat(args).ToArray());

    public static string RunProcess(string exe, string[] args, int timeoutSeconds = 120)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["OMP_NUM_THREADS"] = "1";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutSeconds * 1000))
        {
            p.Kill(true);
            throw new Xunit.Sdk.XunitException($"{exe} {string.Join(" ", args)} timed out");
        }
        if (p.ExitCode != 0)
            throw new Xunit.Sdk.XunitException($"{exe} {string.Join(" ", args)} failed ({p.ExitCode}):\n{stdout.Result}\n{stderr.Result}");
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

