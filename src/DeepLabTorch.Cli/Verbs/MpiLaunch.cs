using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using DeepLabTorch.Distributed;
using DeepLabTorch.Runtime;
using Microsoft.Extensions.Logging;

namespace DeepLabTorch.Cli.Verbs;

/// <summary>
/// `deeplab train --nproc N`: runs the same command under Open MPI's mpirun with N processes on this
/// machine, so that a user need not know mpirun's flags: --allow-run-as-root when run as root (mpirun
/// refuses root otherwise), --oversubscribe (mpirun counts physical cores as slots and would refuse
/// more processes than that), --bind-to none (mpirun would pin each process, and the data loader's
/// threads with it, to one core). Each process then takes cores / N threads unless --threads says.
/// </summary>
internal static class MpiLaunch
{
    /// <summary>The mpirun command line for n processes running this program with args.</summary>
    public static List<string> Command(int n, IEnumerable<string> args, bool asRoot)
    {
        var cmd = new List<string> { "-np", n.ToString(CultureInfo.InvariantCulture) };
        if (asRoot) cmd.Add("--allow-run-as-root");
        cmd.AddRange(new[] { "--oversubscribe", "--bind-to", "none" });
        cmd.Add(Environment.ProcessPath ?? "dotnet");
        var dll = typeof(MpiLaunch).Assembly.Location;
        // Under `dotnet deeplab.dll` the host needs the dll; an apphost (deeplab) runs itself.
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath ?? "dotnet") == "dotnet") cmd.Add(dll);
        cmd.AddRange(args);
        return cmd;
    }

    /// <summary>The arguments without --nproc and its value (any spelling).</summary>
    public static List<string> WithoutNproc(IReadOnlyList<string> args)
    {
        var kept = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var a = args[i];
            if (a is "--nproc" or "--nproc=") { i++; continue; }
            if (a.StartsWith("--nproc=", StringComparison.Ordinal)) continue;
            kept.Add(a);
        }
        return kept;
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    /// <summary>Runs mpirun and waits; returns its exit code. SIGINT, SIGTERM and SIGHUP are passed on to mpirun, which passes them to the processes.</summary>
    public static int Run(int n, IReadOnlyList<string> args, ILogger log)
    {
        var mpirun = FindOnPath("mpirun")
            ?? throw new UserException($"--nproc {n} runs Open MPI's mpirun, which is not installed: {OpenMpi.InstallHint}");
        if (!OpenMpi.IsAvailable())
            throw new UserException($"--nproc {n}: MPI missing: Open MPI's libmpi.so.40 was not found; install it with: {OpenMpi.InstallHint}");
        var cmd = Command(n, WithoutNproc(args), PlatformNatives.IsRoot());
        log.LogInformation("--nproc {Processes}: mpirun {Command}", n, string.Join(" ", cmd.Select(Quote)));
        var psi = new ProcessStartInfo(mpirun) { UseShellExecute = false };
        foreach (var a in cmd) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new UserException("mpirun could not be started");
        var forward = new List<PosixSignalRegistration>();
        foreach (var (signal, number) in new[] { (PosixSignal.SIGINT, 2), (PosixSignal.SIGTERM, 15), (PosixSignal.SIGHUP, 1) })
        {
            forward.Add(PosixSignalRegistration.Create(signal, ctx =>
            {
                // A terminal's Ctrl+C reaches mpirun itself (same process group); a kill of this process does not.
                ctx.Cancel = true;
                if (signal != PosixSignal.SIGINT) PlatformNatives.Signal(p.Id, number);
            }));
        }
        try
        {
            p.WaitForExit();
            return p.ExitCode;
        }
        finally
        {
            foreach (var f in forward) f.Dispose();
        }
    }

    private static string Quote(string s) => s.Length > 0 && s.All(c => char.IsLetterOrDigit(c) || "-_./=:,".Contains(c)) ? s : "'" + s.Replace("'", "'\\''") + "'";
}
