using System.Diagnostics;
using System.Runtime.InteropServices;
using DeepLabTorch.Distributed;
using Xunit;

namespace DeepLabTorch.Tests.Distributed;

/// <summary>A fact that reports itself skipped, with the install command, where Open MPI (mpirun and libmpi.so.40) is absent.</summary>
public sealed class MpiFactAttribute : FactAttribute
{
    public MpiFactAttribute()
    {
        if (MpiRunner.Missing is { } why) Skip = why;
    }
}

/// <summary>Starts mpirun jobs on this machine for the distributed tests, each bounded in time: a job past its limit is killed with all its processes and the test fails.</summary>
internal static class MpiRunner
{
    [DllImport("libc", EntryPoint = "geteuid")]
    private static extern uint GetEffectiveUserId();

    public static string? Mpirun { get; } = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
        .Select(d => Path.Combine(d, "mpirun")).FirstOrDefault(File.Exists);

    /// <summary>Why the MPI tests cannot run here, or null.</summary>
    public static string? Missing =>
        Mpirun is null ? $"Open MPI's mpirun is not installed ({OpenMpi.InstallHint}; scripts/bootstrap.sh installs it)"
        : !OpenMpi.IsAvailable() ? $"Open MPI's libmpi.so.40 is missing ({OpenMpi.InstallHint})"
        : null;

    /// <summary>The test assembly, whose Main is MpiWorker's.</summary>
    public static string TestsDll => typeof(MpiWorker).Assembly.Location;

    public static (int Code, string Stdout, string Stderr) Run(int processes, string workDir, IEnumerable<string> command, int timeoutSeconds = 240) =>
        Run(new[] { ("-np", processes, command.ToList()) }, workDir, timeoutSeconds);

    /// <summary>One job of one or more app contexts (mpirun's `A : B` form, for ranks with different arguments).</summary>
    public static (int Code, string Stdout, string Stderr) Run(IEnumerable<(string Flag, int Processes, List<string> Command)> apps, string workDir, int timeoutSeconds = 240)
    {
        var (p, stdout, stderr) = Start(apps, workDir);
        using (p)
        {
            if (!p.WaitForExit(timeoutSeconds * 1000))
            {
                p.Kill(entireProcessTree: true);
                p.WaitForExit();
                throw new TimeoutException($"mpirun did not finish in {timeoutSeconds} s:\n{stdout.Result}\n{stderr.Result}");
            }
            p.WaitForExit();
            return (p.ExitCode, stdout.Result, stderr.Result);
        }
    }

    public static (Process Process, Task<string> Stdout, Task<string> Stderr) Start(IEnumerable<(string Flag, int Processes, List<string> Command)> apps, string workDir)
    {
        var psi = new ProcessStartInfo(Mpirun ?? "mpirun") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = workDir };
        if (GetEffectiveUserId() == 0) psi.ArgumentList.Add("--allow-run-as-root");
        foreach (var a in new[] { "--oversubscribe", "--bind-to", "none" }) psi.ArgumentList.Add(a);
        var first = true;
        foreach (var (flag, n, command) in apps)
        {
            if (!first) psi.ArgumentList.Add(":");
            first = false;
            psi.ArgumentList.Add(flag);
            psi.ArgumentList.Add(n.ToString(System.Globalization.CultureInfo.InvariantCulture));
            foreach (var c in command) psi.ArgumentList.Add(c);
        }
        var p = Process.Start(psi)!;
        return (p, p.StandardOutput.ReadToEndAsync(), p.StandardError.ReadToEndAsync());
    }

    /// <summary>`dotnet DeepLabTorch.Tests.dll MODE ARGS...`, the command of a worker process.</summary>
    public static List<string> Worker(params string[] args) => new[] { "dotnet", TestsDll }.Concat(args).ToList();

    /// <summary>`dotnet deeplab.dll ARGS...`, the CLI as a rank.</summary>
    public static List<string> Cli(params string[] args) => new[] { "dotnet", DeepLabTorch.Tests.Cli.CliRunner.Dll }.Concat(args).ToList();
}

/// <summary>A theory that reports itself skipped, with the install command, where Open MPI is absent.</summary>
public sealed class MpiTheoryAttribute : TheoryAttribute
{
    public MpiTheoryAttribute()
    {
        if (MpiRunner.Missing is { } why) Skip = why;
    }
}
