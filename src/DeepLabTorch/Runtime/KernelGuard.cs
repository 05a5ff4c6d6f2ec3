using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;

namespace DeepLabTorch.Runtime;

/// <summary>How libtorch runs its CPU convolutions, from fastest to slowest.</summary>
internal enum KernelConfiguration
{
    /// <summary>As libtorch ships: oneDNN (mkldnn) kernels chosen for this CPU.</summary>
    Default,

    /// <summary>oneDNN with its own cache-size guesses instead of a cache table that CPUID left at one byte a level.</summary>
    OneDnnCacheGuesses,

    /// <summary>libtorch's own convolutions (im2col and BLAS, depthwise loops): torch.backends.mkldnn.enabled = false.</summary>
    MkldnnOff,

    /// <summary>oneDNN capped at AVX (ONEDNN_MAX_CPU_ISA=AVX, set in the C environment before oneDNN's first use): no brgemm kernels.</summary>
    IsaAvx,
}

/// <summary>What the guard decided for one CPU, libtorch version and thread count, and why.</summary>
internal sealed record KernelVerdict(
    string Cpu, string CacheTable, string LibTorch, int Threads, int CheckVersion,
    [property: JsonConverter(typeof(JsonStringEnumConverter<KernelConfiguration>))] KernelConfiguration Configuration,
    string Reason, IReadOnlyList<string> Tried, bool? NnpackAvailable, double CheckSeconds, DateTimeOffset Decided)
{
    /// <summary>"default (kernel check passed: 152 cases in 3.1 s)".</summary>
    public string Describe() => $"{KernelGuard.Name(Configuration)} ({Reason})";
}

/// <summary>The outcome of the known-answer check under one configuration.</summary>
internal sealed record ProbeOutcome(bool Passed, string Detail, double Seconds, bool? NnpackAvailable);

/// <summary>Runs the known-answer check under a configuration, somewhere a crash cannot take the caller down.</summary>
internal interface IKernelProbe
{
    ProbeOutcome Probe(KernelConfiguration configuration, int threads);
}

/// <summary>
/// The CPU-kernel guard. libtorch's oneDNN picks kernels per CPU, and on some CPUs (AMD Zen 5 virtual
/// machines that hide the cache topology, with libtorch 2.10's oneDNN v3.7.1) they divide by zero or return
/// wrong values. Once per CPU model, libtorch version and thread count, the guard runs <see cref="KernelCheck"/>
/// in a child process under each configuration, fastest first, and keeps the first that passes; the verdict
/// is cached under the user's cache folder and applied in every later process. DEEPLAB_CPU_KERNELS overrides it.
/// docs/cpu-kernels.md has the story.
/// </summary>
internal static class KernelGuard
{
    /// <summary>auto (the default), check (run the check again), or a configuration's name to use it unchecked.</summary>
    public const string OverrideVariable = "DEEPLAB_CPU_KERNELS";

    /// <summary>The hidden first argument that makes `deeplab` a check child.</summary>
    public const string ChildArgument = "__kernel-check";

    /// <summary>Bumped whenever the cases change, so older verdicts are not trusted.</summary>
    public const int CheckVersion = 1;

    private static readonly object Gate = new();
    private static readonly Dictionary<int, KernelVerdict> Applied = [];
    private static bool _cacheTableFixed;

    /// <summary>oneDNN's cache table as first found, when it was degenerate and has been replaced (for `deeplab info`).</summary>
    private static string? CacheTableAtLoad { get; set; }

    /// <summary>oneDNN's table as libtorch read it, when the early fix replaced it: `default` puts it back.</summary>
    private static uint[]? _shippedTable;

    /// <summary>Where the check children come from; the `deeplab` command sets itself. Null: decide from CPUID alone.</summary>
    public static IKernelProbe? Probe { get; set; }

    /// <summary>
    /// What went wrong in <see cref="PrepareAtLoad"/>, which runs when the assembly loads and has nobody to
    /// tell: <see cref="Ensure"/> throws it, so the verb that needs the kernels fails with it as its one error line.
    /// </summary>
    private static string? _loadFailure;

    /// <summary>The verdict in force in this process (null before the first <see cref="Ensure"/>).</summary>
    public static KernelVerdict? Current { get; private set; }

    /// <summary>The cache file: $XDG_CACHE_HOME/deeplabtorch/cpu-kernels.json, else ~/.cache/deeplabtorch/cpu-kernels.json.</summary>
    public static string CachePath(IReadOnlyDictionary<string, string?>? environment = null)
    {
        string? Get(string name) => environment is null ? Environment.GetEnvironmentVariable(name)
            : environment.TryGetValue(name, out var v) ? v : null;
        var xdg = Get("XDG_CACHE_HOME");
        var root = !string.IsNullOrEmpty(xdg) && Path.IsPathRooted(xdg)
            ? xdg
            : Path.Combine(Get("HOME") is { Length: > 0 } home ? home : Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "deeplabtorch", "cpu-kernels.json");
    }

    public static string Name(KernelConfiguration c) => c switch
    {
        KernelConfiguration.Default => "default",
        KernelConfiguration.OneDnnCacheGuesses => "onednn-cache-guesses",
        KernelConfiguration.MkldnnOff => "mkldnn-off",
        KernelConfiguration.IsaAvx => "isa-avx",
        _ => c.ToString(),
    };

    public static KernelConfiguration Parse(string name) =>
        Enum.GetValues<KernelConfiguration>().FirstOrDefault(c => Name(c) == name.Trim().ToLowerInvariant(), (KernelConfiguration)(-1)) is var c && (int)c >= 0
            ? c
            : throw new UserException($"{OverrideVariable}='{name}': expected auto, check, {string.Join(", ", Enum.GetValues<KernelConfiguration>().Select(Name))}");

    /// <summary>
    /// Test hook: "1,1,1" makes oneDNN read those cache sizes in bytes, which is what it reads on the affected
    /// virtual machines, so the fault and the guard's answer to it can be reproduced on any CPU.
    /// </summary>
    public const string PlantedCacheVariable = "DEEPLAB_TEST_ONEDNN_CACHE_BYTES";

    /// <summary>Applies <see cref="PlantedCacheVariable"/> (tests only; called once, at load).</summary>
    public static void PlantCacheTableForTests()
    {
        var spec = Environment.GetEnvironmentVariable(PlantedCacheVariable);
        if (string.IsNullOrWhiteSpace(spec) || CpuIdentity.Current is not { } cpu || !OperatingSystem.IsLinux()) return;
        var sizes = spec.Split(',').Select(p => uint.TryParse(p.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : 0u).ToArray();
        if (sizes.Length is < 1 or > 3 || sizes.Contains(0u))
            throw new UserException($"{PlantedCacheVariable}='{spec}': expected 1 to 3 cache sizes in bytes, such as 1,1,1");
        var table = OneDnnCacheTable.Locate(cpu, out var why)
                    ?? throw new UserException($"{PlantedCacheVariable}: oneDNN's cache table cannot be edited: {why}");
        table.Plant(sizes);
    }

    /// <summary>
    /// At load (TorchRuntime's module initialiser): plants the test cache table, then fixes a degenerate one.
    /// A failure (a malformed <see cref="PlantedCacheVariable"/>) is kept for <see cref="Ensure"/> to throw,
    /// since nothing at load has a logger or a console to report it to.
    /// </summary>
    internal static void PrepareAtLoad()
    {
        try
        {
            PlantCacheTableForTests();
            FixDegenerateCacheTable();
        }
        catch (UserException e)
        {
            _loadFailure = e.Message;
        }
    }

    /// <summary>
    /// Early, before any model runs: when CPUID shows the hidden AMD cache topology and oneDNN's table is
    /// degenerate, replace it with oneDNN's guesses. Cheap (no check), and enough for the one fault known;
    /// <see cref="Ensure"/> then verifies with the check. Runs once.
    /// </summary>
    public static void FixDegenerateCacheTable()
    {
        lock (Gate)
        {
            if (_cacheTableFixed) return;
            _cacheTableFixed = true;
            // The test hook stands for a hidden cache topology, so a planted table gets the same early fix.
            bool planted = !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(PlantedCacheVariable));
            if (CpuIdentity.Current is not { } cpu || !OperatingSystem.IsLinux() || !(planted || cpu is { IsAmd: true, AmdCacheLeafEmpty: true })) return;
            if (Environment.GetEnvironmentVariable(OverrideVariable) is { } o && o.Trim().Equals(Name(KernelConfiguration.Default), StringComparison.OrdinalIgnoreCase))
                return;
            if (OneDnnCacheTable.Locate(cpu, out _) is not { IsDegenerate: true } table) return;
            CacheTableAtLoad = table.Describe();
            _shippedTable = table.Snapshot();
            table.UseGuesses();
        }
    }

    /// <summary>
    /// Makes libtorch's CPU kernels safe at this thread count: the cached verdict, the override, or a new check.
    /// Throws a UserException when no configuration passes (or when the set-up at load failed).
    /// </summary>
    /// <param name="log">
    /// Where the guard reports (category DeepLabTorch.Runtime): a verdict other than the default, once per
    /// process and thread count, the check it starts (Debug), and a verdict cache it cannot use (Warning).
    /// The guard is process-wide, as libtorch's kernel settings are, but its messages are not: they go to the
    /// logger of the caller whose call decides, and a later call that finds the verdict applied says nothing.
    /// </param>
    public static KernelVerdict Ensure(int threads, ILogger? log = null)
    {
        if (_loadFailure is { } failure) throw new UserException(failure);
        lock (Gate)
        {
            if (Applied.TryGetValue(threads, out var known)) return Current = Apply(known, log: null);
            var verdict = Decide(threads, log);
            Applied[threads] = verdict;
            return Current = Apply(verdict, log);
        }
    }

    private static KernelVerdict Decide(int threads, ILogger? log)
    {
        var libtorch = TorchRuntime.LibTorchVersion;
        var cpu = CpuIdentity.Current;
        if (cpu is null || !OperatingSystem.IsLinux())
            return new KernelVerdict(cpu?.Key ?? "not x86", "", libtorch, threads, CheckVersion, KernelConfiguration.Default,
                "not checked: the guard covers x86-64 Linux", [], null, 0, DateTimeOffset.UtcNow);
        // What oneDNN reads from CPUID: the same CPU model may hide its caches in one VM and not another.
        var planted = Environment.GetEnvironmentVariable(PlantedCacheVariable);
        bool degenerate = !string.IsNullOrWhiteSpace(planted) || cpu is { IsAmd: true, AmdCacheLeafEmpty: true };
        var table = string.IsNullOrWhiteSpace(planted) ? cpu.CacheTopology : $"planted: {planted.Trim()} bytes ({PlantedCacheVariable})";
        return Resolve(cpu, table, degenerate, libtorch, threads, Environment.GetEnvironmentVariable(OverrideVariable), Probe, CachePath(), log);
    }

    /// <summary>
    /// The decision for given facts: the override (<paramref name="choice"/>: null, auto, check or a configuration),
    /// then the verdict cached in <paramref name="cachePath"/>, then the probe under each candidate.
    /// </summary>
    internal static KernelVerdict Resolve(CpuIdentity cpu, string table, bool degenerate, string libtorch, int threads,
        string? choice, IKernelProbe? probe, string cachePath, ILogger? log = null)
    {
        log ??= NullLogger.Instance;
        choice = choice?.Trim().ToLowerInvariant();
        if (!string.IsNullOrEmpty(choice) && choice is not ("auto" or "check"))
            return new KernelVerdict(cpu.Key, table, libtorch, threads, CheckVersion, Parse(choice), $"{OverrideVariable}={choice}, not checked",
                [], null, 0, DateTimeOffset.UtcNow);
        if (probe is null)
            return degenerate
                ? new KernelVerdict(cpu.Key, table, libtorch, threads, CheckVersion, KernelConfiguration.OneDnnCacheGuesses,
                    "oneDNN read 1-byte caches; not checked (no check child in this process)", [], null, 0, DateTimeOffset.UtcNow)
                : new KernelVerdict(cpu.Key, table, libtorch, threads, CheckVersion, KernelConfiguration.Default,
                    "not checked (no check child in this process)", [], null, 0, DateTimeOffset.UtcNow);
        return new VerdictCache(cachePath, log).GetOrAdd(cpu.Key, table, libtorch, threads, recheck: choice == "check", () =>
        {
            log.LogDebug("checking the CPU kernels at {Threads} thread(s) on {Cpu} (once per CPU, libtorch version and thread count)", threads, cpu.Describe());
            return Choose(cpu, table, libtorch, threads, probe, degenerate);
        });
    }

    /// <summary>The candidates, fastest first, for a CPU whose oneDNN cache table is or is not degenerate.</summary>
    public static IReadOnlyList<KernelConfiguration> Candidates(bool degenerateCacheTable) => degenerateCacheTable
        ? [KernelConfiguration.OneDnnCacheGuesses, KernelConfiguration.MkldnnOff, KernelConfiguration.IsaAvx]
        : [KernelConfiguration.Default, KernelConfiguration.MkldnnOff, KernelConfiguration.IsaAvx];

    /// <summary>Runs the probe under each candidate and keeps the first that passes; throws when none does.</summary>
    public static KernelVerdict Choose(CpuIdentity cpu, string cacheTable, string libtorch, int threads, IKernelProbe probe, bool degenerateCacheTable)
    {
        var tried = new List<string>();
        double seconds = 0;
        bool? nnpack = null;
        foreach (var candidate in Candidates(degenerateCacheTable))
        {
            var outcome = probe.Probe(candidate, threads);
            seconds += outcome.Seconds;
            nnpack ??= outcome.NnpackAvailable;
            tried.Add($"{Name(candidate)}: {(outcome.Passed ? "passed" : "failed")}, {outcome.Detail}");
            if (!outcome.Passed) continue;
            var reason = degenerateCacheTable && candidate == KernelConfiguration.OneDnnCacheGuesses
                ? $"oneDNN read caches of one byte ({cacheTable}) where CPUID hides the cache topology; with its own guesses the kernel check passed ({outcome.Detail})"
                : tried.Count == 1
                    ? $"kernel check passed: {outcome.Detail}"
                    : $"kernel check: {string.Join("; ", tried)}";
            return new KernelVerdict(cpu.Key, cacheTable, libtorch, threads, CheckVersion, candidate, reason, tried, nnpack, seconds, DateTimeOffset.UtcNow);
        }
        throw new UserException(
            $"no CPU-kernel configuration of libtorch {libtorch} computes correct convolutions on {cpu.Describe()} at {threads} thread(s): "
            + string.Join("; ", tried) + $". Try another --threads, or set {OverrideVariable}=<configuration> to run unchecked (docs/cpu-kernels.md)");
    }

    /// <summary>Puts the verdict in force; a verdict other than the default is reported to <paramref name="log"/> (null: silently).</summary>
    internal static KernelVerdict Apply(KernelVerdict verdict, ILogger? log)
    {
        ApplyConfiguration(verdict.Configuration);
        if (verdict.NnpackAvailable == false && LibTorchNative.NnpackEnabled) LibTorchNative.NnpackEnabled = false;
        if (log is not null && verdict.Configuration != KernelConfiguration.Default)
            log.LogInformation("CPU kernels: {Configuration} at {Threads} thread(s) — {Reason} ({OverrideVariable} overrides; see deeplab info)",
                Name(verdict.Configuration), verdict.Threads, verdict.Reason, OverrideVariable);
        return verdict;
    }

    /// <summary>Puts libtorch in a configuration, in this process. Also used by the check child.</summary>
    public static void ApplyConfiguration(KernelConfiguration configuration)
    {
        TorchRuntime.EnsureLoaded();
        if (!OperatingSystem.IsLinux() || CpuIdentity.Current is not { } cpu) return;
        switch (configuration)
        {
            case KernelConfiguration.Default:
                // As shipped: the table oneDNN read itself, even where the early fix replaced it.
                if (_shippedTable is not null) OneDnnCacheTable.Locate(cpu, out _)?.Restore(_shippedTable);
                if (!LibTorchNative.MkldnnEnabled) LibTorchNative.MkldnnEnabled = true;
                break;
            case KernelConfiguration.OneDnnCacheGuesses:
                var table = OneDnnCacheTable.Locate(cpu, out var why)
                            ?? throw new UserException($"CPU kernels {Name(configuration)}: oneDNN's cache table cannot be edited: {why}");
                if (table.IsDegenerate) CacheTableAtLoad ??= table.Describe();
                table.UseGuesses();
                if (!LibTorchNative.MkldnnEnabled) LibTorchNative.MkldnnEnabled = true;
                break;
            case KernelConfiguration.MkldnnOff:
                LibTorchNative.MkldnnEnabled = false;
                break;
            case KernelConfiguration.IsaAvx:
                // Read by oneDNN once, at its first use; a user's own setting wins.
                if (LibTorchNative.GetNativeEnvironment("ONEDNN_MAX_CPU_ISA") is null)
                    LibTorchNative.SetNativeEnvironment("ONEDNN_MAX_CPU_ISA", "AVX");
                if (!LibTorchNative.MkldnnEnabled) LibTorchNative.MkldnnEnabled = true;
                break;
        }
    }

    /// <summary>For `deeplab info`: the verdict at the current thread count, with the CPU and oneDNN's cache table.</summary>
    /// <param name="log">As for <see cref="Ensure"/>, when this call is the one that decides.</param>
    public static IReadOnlyList<string> Describe(ILogger? log = null)
    {
        var lines = new List<string>();
        var verdict = Ensure(torch.get_num_threads(), log);
        var cpu = CpuIdentity.Current;
        lines.Add($"CPU: {(cpu is null ? "not x86" : cpu.Describe())}"
                  + (cpu is { IsAmd: true, AmdCacheLeafEmpty: true } ? "; CPUID leaf 0x8000001D (cache topology) is empty" : ""));
        if (cpu is not null && OperatingSystem.IsLinux())
            lines.Add("oneDNN cache table: " + (OneDnnCacheTable.Locate(cpu, out var why) is { } t ? t.Describe() : $"not readable ({why})")
                      + (CacheTableAtLoad is null ? "" : $"; as first read: {CacheTableAtLoad}"));
        lines.Add($"CPU kernels: {verdict.Describe()}");
        lines.Add($"CPU-kernel verdicts cached in {CachePath()}");
        if (verdict.NnpackAvailable == false) lines.Add("NNPACK: cannot initialise on this CPU, so it is off");
        return lines;
    }

    internal static string Format(double seconds) => seconds.ToString("0.0", CultureInfo.InvariantCulture);

    /// <summary>The verdict file: a JSON list, read and rewritten under an exclusive lock so concurrent processes check once.</summary>
    private sealed class VerdictCache(string path, ILogger log)
    {
        private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };


        public KernelVerdict GetOrAdd(string cpu, string table, string libtorch, int threads, bool recheck, Func<KernelVerdict> decide)
        {
            FileStream? lockFile = null;
            try
            {
                try
                {
                    Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                    lockFile = OpenLock(path + ".lock");
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    log.LogWarning("CPU-kernel verdicts cannot be cached in {Path} ({Problem}); checking in this process only", path, e.Message);
                    return decide();
                }
                var all = Read();
                bool Same(KernelVerdict v) => v.Cpu == cpu && v.CacheTable == table && v.LibTorch == libtorch && v.Threads == threads;
                var hit = all.FirstOrDefault(v => Same(v) && v.CheckVersion == CheckVersion);
                if (hit is not null && !recheck) return hit;
                var verdict = decide();
                all.RemoveAll(Same);
                all.Add(verdict);
                Write(all);
                return verdict;
            }
            finally
            {
                lockFile?.Dispose();
            }
        }

        private static FileStream OpenLock(string lockPath)
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(10);
            while (true)
            {
                try
                {
                    return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                }
                catch (IOException) when (DateTime.UtcNow < deadline)
                {
                    Thread.Sleep(100); // another process is checking; its verdict will be in the file
                }
            }
        }

        private List<KernelVerdict> Read()
        {
            try
            {
                return File.Exists(path) ? JsonSerializer.Deserialize<List<KernelVerdict>>(File.ReadAllText(path), Json) ?? [] : [];
            }
            catch (Exception e) when (e is JsonException or IOException or NotSupportedException)
            {
                log.LogWarning("{Path}: unreadable CPU-kernel verdicts ({Problem}); checking again", path, e.Message);
                return [];
            }
        }

        private void Write(List<KernelVerdict> all)
        {
            var temp = path + ".tmp";
            try
            {
                File.WriteAllText(temp, JsonSerializer.Serialize(all, Json));
                File.Move(temp, path, overwrite: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                log.LogWarning("{Path}: cannot save the CPU-kernel verdict ({Problem})", path, e.Message);
            }
        }
    }
}

