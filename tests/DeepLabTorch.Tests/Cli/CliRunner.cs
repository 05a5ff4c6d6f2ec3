using System.Diagnostics;
using DeepLabTorch.Tests.Training;

namespace DeepLabTorch.Tests.Cli;

/// <summary>Runs the built CLI (deeplab.dll) as a child process, as a user would.</summary>
internal static class CliRunner
{
    public static string Dll => Path.Combine(ReferenceScripts.RepoRoot, "src", "DeepLabTorch.Cli", "bin", "Release", "net10.0", "deeplab.dll");

    public static (int Code, string Stdout, string Stderr) Run(string workDir, params string[] args) => Run(workDir, null, args);

    /// <param name="environment">Variables to set for the child; a null value removes the variable.</param>
    public static (int Code, string Stdout, string Stderr) Run(string workDir, IReadOnlyDictionary<string, string?>? environment, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = workDir };
        psi.ArgumentList.Add(Dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? new Dictionary<string, string?>())
            if (v is null) psi.Environment.Remove(k);
            else psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(300_000))
        {
            p.Kill(true);
            throw new TimeoutException($"deeplab {string.Join(" ", args)} did not finish in 300 s");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>
    /// Runs the CLI on a real terminal of the given width, through script(1), with CI unset (so progress
    /// bars draw): the terminal's whole output (stdout and stderr as the user sees them) and the exit code.
    /// </summary>
    public static (int Code, string Terminal) RunInTerminal(string workDir, int columns, params string[] args)
    {
        var command = $"stty cols {columns} rows 20; CI= TERM=xterm dotnet " + string.Join(" ", new[] { Dll }.Concat(args).Select(a => "'" + a.Replace("'", "'\\''") + "'"));
        var psi = new ProcessStartInfo("script") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = workDir };
        foreach (var a in new[] { "-qec", command, "/dev/null" }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEndAsync();
        var errors = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(300_000))
        {
            p.Kill(true);
            throw new TimeoutException($"deeplab {string.Join(" ", args)} on a terminal did not finish in 300 s");
        }
        return (p.ExitCode, output.Result + errors.Result);
    }
}
