using System.Diagnostics;
using System.Globalization;
using TorchSharp;

namespace DeepLabTorch.Runtime;

/// <summary>
/// The known-answer check in a child process: the parent starts a command (for `deeplab`, itself with
/// <see cref="KernelGuard.ChildArgument"/>) that calls <see cref="KernelCheckChild.Run"/>, and reads its exit status
/// and the protocol lines on its stdout. A kernel
/// that kills the child (SIGFPE, SIGSEGV) or hangs it fails the configuration without harming the parent.
/// </summary>
internal sealed class ChildProcessProbe(string fileName, IReadOnlyList<string> prefixArguments) : IKernelProbe
{
    /// <summary>Exit status of a child whose check found a wrong value.</summary>
    public const int WrongValues = 3;

    /// <summary>Test hook: planted faults for the child (<see cref="KernelCheckChild.FaultVariable"/>).</summary>
    public IDictionary<string, string> Environment { get; } = new Dictionary<string, string>();

    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>A probe that runs the current `deeplab` command (apphost or `dotnet deeplab.dll`) as the child.</summary>
    public static ChildProcessProbe? ForThisProcess()
    {
        var host = System.Environment.ProcessPath;
        var entry = System.Reflection.Assembly.GetEntryAssembly()?.Location;
        if (host is null) return null;
        bool isDotnet = Path.GetFileNameWithoutExtension(host).Equals("dotnet", StringComparison.OrdinalIgnoreCase);
        if (isDotnet && string.IsNullOrEmpty(entry)) return null;
        return isDotnet ? new ChildProcessProbe(host, [entry!, KernelGuard.ChildArgument]) : new ChildProcessProbe(host, [KernelGuard.ChildArgument]);
    }

    public ProbeOutcome Probe(KernelConfiguration configuration, int threads)
    {
        var start = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in prefixArguments) start.ArgumentList.Add(a);
        start.ArgumentList.Add(KernelGuard.Name(configuration));
        start.ArgumentList.Add(threads.ToString(CultureInfo.InvariantCulture));
        foreach (var (k, v) in Environment) start.Environment[k] = v;
        // The child checks exactly what it is told: no override, no cached verdict of its own.
        start.Environment.Remove(KernelGuard.OverrideVariable);
        var clock = Stopwatch.StartNew();
        using var child = Process.Start(start) ?? throw new InvalidOperationException($"could not start {fileName}");
        child.StandardInput.Close();
        var stdout = child.StandardOutput.ReadToEndAsync();
        var stderr = child.StandardError.ReadToEndAsync();
        if (!child.WaitForExit(Timeout))
        {
            try { child.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            child.WaitForExit();
            return new ProbeOutcome(false, $"hung (killed after {Timeout.TotalSeconds:0} s)", clock.Elapsed.TotalSeconds, null);
        }
        child.WaitForExit();
        var output = stdout.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        bool? nnpack = output.Contains("nnpack: available") ? true : output.Contains("nnpack: unavailable") ? false : null;
        var verdictLine = output.LastOrDefault(l => l.StartsWith("pass:", StringComparison.Ordinal) || l.StartsWith("fail:", StringComparison.Ordinal));
        double seconds = clock.Elapsed.TotalSeconds;
        return child.ExitCode switch
        {
            0 when verdictLine?.StartsWith("pass:", StringComparison.Ordinal) == true =>
                new ProbeOutcome(true, verdictLine[5..].Trim() + $", {KernelGuard.Format(seconds)} s with start-up", seconds, nnpack),
            WrongValues when verdictLine is not null => new ProbeOutcome(false, "wrong values: " + verdictLine[5..].Trim(), seconds, nnpack),
            > 128 and < 160 => new ProbeOutcome(false, $"crashed with {SignalName(child.ExitCode - 128)}", seconds, nnpack),
            var code => new ProbeOutcome(false, $"exit code {code}: {LastLine(stderr.Result) ?? verdictLine ?? "no output"}", seconds, nnpack),
        };
    }

    private static string? LastLine(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault();

    private static string SignalName(int signal) => signal switch
    {
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        _ => $"signal {signal}",
    };
}

/// <summary>
/// The child's side: apply one configuration, run the check, report on stdout, exit 0 or 3. The protocol
/// ("fail: CASE: WHAT" per wrong case, "nnpack: available|unavailable", "pass: N cases in S s") is written
/// here and read by <see cref="ChildProcessProbe"/> above, so its two halves stay side by side; the process's
/// console belongs to the program, which passes its stdout and stderr in (the library writes to no console).
/// </summary>
internal static class KernelCheckChild
{
    /// <summary>
    /// Test hook, read by the child only: "wrong" perturbs one result, "sigfpe" raises SIGFPE, "hang" sleeps,
    /// (KernelGuard.PlantedCacheVariable reproduces the affected machines' cache table, in every process.)
    /// Several may be joined with commas; "config=NAME:fault" plants a fault under one configuration only.
    /// </summary>
    public const string FaultVariable = "DEEPLAB_KERNEL_CHECK_FAULT";

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "raise")]
    private static extern int Raise(int signal);

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "signal")]
    private static extern IntPtr Signal(int signal, IntPtr handler);

    /// <summary>
    /// The child process's whole work. args: configuration name, thread count, and --all to run every case
    /// (diagnosis). The protocol goes to <paramref name="stdout"/>, a usage or set-up error to
    /// <paramref name="stderr"/> (its last line is what the parent quotes); returns the exit status.
    /// </summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        try
        {
            bool all = args.Length == 3 && args[2] == "--all";
            if (args.Length != (all ? 3 : 2) || !int.TryParse(args[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var threads) || threads < 1)
            {
                stderr.WriteLine($"usage: deeplab {KernelGuard.ChildArgument} CONFIGURATION THREADS [--all]");
                return 2;
            }
            var configuration = KernelGuard.Parse(args[0]);
            var faults = Faults(System.Environment.GetEnvironmentVariable(FaultVariable), args[0]);
            TorchRuntime.EnsureLoaded();
            KernelGuard.ApplyConfiguration(configuration);
            torch.set_num_threads(threads);
            if (faults.Contains("sigfpe"))
            {
                // As a kernel's division by zero ends: .NET's own SIGFPE handler is taken away first (it would
                // otherwise treat a raised signal as handled).
                Signal(8, IntPtr.Zero);
                Raise(8);
            }
            if (faults.Contains("hang")) Thread.Sleep(Timeout.Infinite);
            Func<KernelCase, torch.Tensor, torch.Tensor>? tamper = faults.Contains("wrong")
                ? (c, y) => c.Shape.Kernel == 1 && c.Batch == 2 ? y.mul(Extensions.HeldScalars.Byte255) : y
                : null;
            // Each failure is written (and flushed) as it is found: a later case that kills the process must not take it along.
            var result = KernelCheck.Run(tamper: tamper, all: all, reportFailure: f =>
            {
                stdout.WriteLine($"fail: {f}");
                stdout.Flush();
            });
            stdout.WriteLine(LibTorchNative.NnpackAvailable() ? "nnpack: available" : "nnpack: unavailable");
            if (result.Passed)
            {
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"pass: {result.Cases} cases in {result.Elapsed.TotalSeconds:0.0} s"));
                stdout.Flush();
                return 0;
            }
            stdout.Flush();
            return ChildProcessProbe.WrongValues;
        }
        catch (Exception e)
        {
            stderr.WriteLine($"kernel check: {e.Message}");
            stderr.Flush();
            return 1;
        }
    }

    private static HashSet<string> Faults(string? spec, string configuration)
    {
        var set = new HashSet<string>(StringComparer.Ordinal);
        foreach (var part in (spec ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (part.StartsWith("config=", StringComparison.Ordinal))
            {
                var rest = part["config=".Length..].Split(':', 2);
                if (rest.Length == 2 && rest[0] == configuration) set.Add(rest[1]);
            }
            else set.Add(part);
        }
        return set;
    }
}
