using System.Text.Json;
using DeepLabTorch.Runtime;
using DeepLabTorch.Tests.Cli;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Runtime;

/// <summary>A fact that reports itself skipped where oneDNN's cache table cannot be read (another libtorch build, not x86-64 Linux).</summary>
public sealed class OneDnnTableFactAttribute : FactAttribute
{
    public OneDnnTableFactAttribute()
    {
        TorchRuntime.EnsureLoaded();
        if (CpuIdentity.Current is not { } cpu)
            Skip = "not an x86 CPU: oneDNN's x64 cache table does not exist";
        else if (OneDnnCacheTable.Locate(cpu, out var why) is null)
            Skip = $"oneDNN's cache table cannot be read in this libtorch: {why}";
    }
}

/// <summary>A probe that answers from a script and counts its calls.</summary>
internal sealed class ScriptedProbe(Func<KernelConfiguration, ProbeOutcome> answer) : IKernelProbe
{
    public List<(KernelConfiguration Configuration, int Threads)> Calls { get; } = [];

    public ProbeOutcome Probe(KernelConfiguration configuration, int threads)
    {
        Calls.Add((configuration, threads));
        return answer(configuration);
    }

    public static ProbeOutcome Pass => new(true, "152 cases in 2.0 s", 2.0, true);
    public static ProbeOutcome Crash => new(false, "crashed with SIGFPE", 0.4, null);
    public static ProbeOutcome Wrong => new(false, "wrong values: resnet layer2 expand 1x1 ...", 0.5, true);
}

public class KernelGuardTests
{
    private static readonly CpuIdentity Cpu = new("AuthenticAMD", 26, 2, 0, 15, 2, 11, 0, "AMD EPYC 9B45", true, true, 48 * 1024, 1024 * 1024);

    private static KernelVerdict Resolve(IKernelProbe? probe, string cachePath, int threads = 2, string libtorch = "2.10.0",
        bool degenerate = false, string? choice = null, string table = "L1 32 KiB/1, L2 1024 KiB/1, L3 32768 KiB/8") =>
        KernelGuard.Resolve(Cpu, table, degenerate, libtorch, threads, choice, probe, cachePath);

    [Fact]
    public void AHealthyCpuKeepsTheDefault()
    {
        using var dir = new TempDir();
        var probe = new ScriptedProbe(_ => ScriptedProbe.Pass);
        var v = Resolve(probe, dir["v.json"]);
        Assert.Equal(KernelConfiguration.Default, v.Configuration);
        Assert.Equal([(KernelConfiguration.Default, 2)], probe.Calls);
        Assert.Contains("kernel check passed", v.Reason);
    }

    [Fact]
    public void ACrashingOrWrongDefaultFallsToTheNextConfigurationThatPasses()
    {
        using var dir = new TempDir();
        var crash = new ScriptedProbe(c => c == KernelConfiguration.Default ? ScriptedProbe.Crash : ScriptedProbe.Pass);
        var v = Resolve(crash, dir["a.json"]);
        Assert.Equal(KernelConfiguration.MkldnnOff, v.Configuration);
        Assert.Equal([KernelConfiguration.Default, KernelConfiguration.MkldnnOff], crash.Calls.Select(c => c.Configuration));
        Assert.Contains("default: failed, crashed with SIGFPE", v.Reason);

        var wrongTwice = new ScriptedProbe(c => c == KernelConfiguration.IsaAvx ? ScriptedProbe.Pass : ScriptedProbe.Wrong);
        Assert.Equal(KernelConfiguration.IsaAvx, Resolve(wrongTwice, dir["b.json"]).Configuration);
        Assert.Equal(3, wrongTwice.Calls.Count);
    }

    [Fact]
    public void ADegenerateCacheTableIsNeverKeptAndItsFixIsTriedFirst()
    {
        using var dir = new TempDir();
        var probe = new ScriptedProbe(_ => ScriptedProbe.Pass);
        var v = Resolve(probe, dir["v.json"], degenerate: true, table: "L1 1 B/1, L2 1 B/1, L3 1 B/1");
        Assert.Equal(KernelConfiguration.OneDnnCacheGuesses, v.Configuration);
        Assert.DoesNotContain(probe.Calls, c => c.Configuration == KernelConfiguration.Default);
        Assert.Contains("one byte", v.Reason);
    }

    [Fact]
    public void WhenNothingPassesTheErrorNamesEveryTry()
    {
        using var dir = new TempDir();
        var probe = new ScriptedProbe(c => c == KernelConfiguration.MkldnnOff ? ScriptedProbe.Wrong : ScriptedProbe.Crash);
        var e = Assert.Throws<UserException>(() => Resolve(probe, dir["v.json"]));
        Assert.Contains("no CPU-kernel configuration", e.Message);
        foreach (var name in new[] { "default: failed, crashed with SIGFPE", "mkldnn-off: failed, wrong values", "isa-avx: failed" })
            Assert.Contains(name, e.Message);
        Assert.Contains(KernelGuard.OverrideVariable, e.Message);
        Assert.False(File.Exists(dir["v.json"]), "a failed decision must not be cached");
    }

    [Fact]
    public void TheVerdictIsCachedAndCheckedAgainForAnotherLibtorchThreadCountOrCacheTable()
    {
        using var dir = new TempDir();
        var path = dir["deeplabtorch/cpu-kernels.json"];
        var probe = new ScriptedProbe(_ => ScriptedProbe.Pass);
        Resolve(probe, path);
        Resolve(probe, path);
        Assert.Single(probe.Calls);
        Assert.True(File.Exists(path));

        Resolve(probe, path, libtorch: "2.11.0");
        Assert.Equal(2, probe.Calls.Count);
        Resolve(probe, path, threads: 1);
        Assert.Equal(3, probe.Calls.Count);
        Assert.Equal(1, probe.Calls[^1].Threads);
        Resolve(probe, path, table: "L1 1 B/1, L2 1 B/1, L3 1 B/1", degenerate: true);
        Assert.Equal(4, probe.Calls.Count);
        // All four verdicts are kept side by side, and each is reused.
        Resolve(probe, path, libtorch: "2.11.0");
        Resolve(probe, path, threads: 1);
        Resolve(probe, path);
        Assert.Equal(4, probe.Calls.Count);
        var saved = JsonSerializer.Deserialize<List<KernelVerdict>>(File.ReadAllText(path))!;
        Assert.Equal(4, saved.Count);

        // "check" runs it again and replaces the entry.
        Resolve(probe, path, choice: "check");
        Assert.Equal(5, probe.Calls.Count);
        Assert.Equal(4, JsonSerializer.Deserialize<List<KernelVerdict>>(File.ReadAllText(path))!.Count);
    }

    [Fact]
    public void AnUnreadableCacheIsCheckedAgainAndAnUnwritableOneStillDecides()
    {
        using var dir = new TempDir();
        var path = dir["cpu-kernels.json"];
        File.WriteAllText(path, "{ not json");
        var probe = new ScriptedProbe(_ => ScriptedProbe.Pass);
        Assert.Equal(KernelConfiguration.Default, Resolve(probe, path).Configuration);
        Assert.Single(probe.Calls);
        Assert.Single(JsonSerializer.Deserialize<List<KernelVerdict>>(File.ReadAllText(path))!);

        File.WriteAllText(dir["file"], "");
        var blocked = Path.Combine(dir["file"], "deeplabtorch", "cpu-kernels.json");
        Assert.Equal(KernelConfiguration.Default, Resolve(probe, blocked).Configuration);
        Assert.Equal(2, probe.Calls.Count);
    }

    [Fact]
    public void TheOverrideIsUsedUncheckedAndABadOneIsNamed()
    {
        using var dir = new TempDir();
        var probe = new ScriptedProbe(_ => ScriptedProbe.Crash);
        var v = Resolve(probe, dir["v.json"], choice: "MKLDNN-off");
        Assert.Equal(KernelConfiguration.MkldnnOff, v.Configuration);
        Assert.Empty(probe.Calls);
        Assert.Contains("not checked", v.Reason);
        var e = Assert.Throws<UserException>(() => Resolve(probe, dir["v.json"], choice: "fast"));
        Assert.Equal("DEEPLAB_CPU_KERNELS='fast': expected auto, check, default, onednn-cache-guesses, mkldnn-off, isa-avx", e.Message);
    }

    [Fact]
    public void WithoutAProbeOnlyTheKnownFaultIsFixed()
    {
        using var dir = new TempDir();
        Assert.Equal(KernelConfiguration.Default, Resolve(null, dir["v.json"]).Configuration);
        Assert.Equal(KernelConfiguration.OneDnnCacheGuesses, Resolve(null, dir["v.json"], degenerate: true).Configuration);
        Assert.False(File.Exists(dir["v.json"]), "an unchecked verdict is not cached");
    }

    [LinuxFact(LinuxOnly.UnixPaths)]
    public void TheCacheFolderHonoursXdgCacheHome()
    {
        Assert.Equal("/x/cache/deeplabtorch/cpu-kernels.json",
            KernelGuard.CachePath(new Dictionary<string, string?> { ["XDG_CACHE_HOME"] = "/x/cache", ["HOME"] = "/home/u" }));
        Assert.Equal("/home/u/.cache/deeplabtorch/cpu-kernels.json",
            KernelGuard.CachePath(new Dictionary<string, string?> { ["HOME"] = "/home/u" }));
        // The XDG spec: a relative value is invalid and ignored.
        Assert.Equal("/home/u/.cache/deeplabtorch/cpu-kernels.json",
            KernelGuard.CachePath(new Dictionary<string, string?> { ["XDG_CACHE_HOME"] = "rel", ["HOME"] = "/home/u" }));
    }

    /// <summary>The check itself, in this process: the kernels of this CPU as configured pass, and a planted wrong kernel is caught and named.</summary>
    [Fact]
    public void TheCheckCatchesAPlantedWrongKernel()
    {
        var shapes = KernelCheck.Shapes.Where(s => s.Name is "resnet layer2 expand 1x1" or "mobilenet depthwise 3x3").ToList();
        var clean = KernelCheck.Run(KernelCheck.Cases(shapes));
        Assert.True(clean.Passed, clean.Failure);
        Assert.Equal(16, clean.Cases);

        // One element off by 5% of the scale, in the channels-last bfloat16 depthwise case at batch 2 only.
        var planted = KernelCheck.Run(KernelCheck.Cases(shapes), (c, y) =>
        {
            if (c.Shape.Groups == 1 || c.Batch != 2 || !c.ChannelsLast || c.Precision != ScalarType.BFloat16) return y;
            var bad = y.to(ScalarType.Float32).clone();
            using var scale = (bad.abs().max().item<float>() * 0.05f).ToScalar();
            bad[0, 0, 0, 0].add_(scale);
            return bad;
        }, all: true);
        var failure = Assert.Single(planted.Failures);
        Assert.StartsWith("mobilenet depthwise 3x3 (144->144, 3x3, stride 1, dilation 1, groups 144, 9x12) batch 2 bfloat16 channels-last: output differs", failure);
    }

    /// <summary>The configuration this machine runs under (onednn-cache-guesses where oneDNN reads 1-byte caches): the healthy baseline of the child tests.</summary>
    private static KernelConfiguration Healthy =>
        KernelGuard.Current?.Configuration is { } c && c != KernelConfiguration.MkldnnOff ? c : KernelConfiguration.Default;

    private static ChildProcessProbe Child(params (string Key, string Value)[] environment)
    {
        var probe = new ChildProcessProbe("dotnet", [CliRunner.Dll, KernelGuard.ChildArgument]) { Timeout = TimeSpan.FromSeconds(300) };
        foreach (var (k, v) in environment) probe.Environment[k] = v;
        return probe;
    }

    /// <summary>The child process survives what would kill the user's process: a crash, a hang, wrong values.</summary>
    [Fact]
    public void TheChildProbeReportsACrashAHangAndWrongValues()
    {
        var crash = Child((KernelCheckChild.FaultVariable, "sigfpe")).Probe(KernelConfiguration.Default, 2);
        Assert.False(crash.Passed);
        Assert.Equal("crashed with SIGFPE", crash.Detail);

        var wrong = Child((KernelCheckChild.FaultVariable, "wrong")).Probe(Healthy, 2);
        Assert.False(wrong.Passed);
        Assert.StartsWith("wrong values: ", wrong.Detail);
        Assert.Contains("1x1", wrong.Detail);

        var hang = new ChildProcessProbe("dotnet", [CliRunner.Dll, KernelGuard.ChildArgument]) { Timeout = TimeSpan.FromSeconds(5) };
        hang.Environment[KernelCheckChild.FaultVariable] = "hang";
        var hung = hang.Probe(KernelConfiguration.Default, 1);
        Assert.False(hung.Passed);
        Assert.StartsWith("hung", hung.Detail);
    }

    /// <summary>The whole decision through real children: a crash planted under the default moves the verdict on, and the next configuration's check really runs.</summary>
    [Fact]
    public void TheGuardMovesPastAPlantedCrashWithRealChildren()
    {
        using var dir = new TempDir();
        var probe = Child((KernelCheckChild.FaultVariable, "config=default:sigfpe"));
        var v = Resolve(probe, dir["v.json"], threads: 2);
        Assert.Equal(KernelConfiguration.MkldnnOff, v.Configuration);
        Assert.Equal("default: failed, crashed with SIGFPE", v.Tried[0]);
        Assert.StartsWith("mkldnn-off: passed, 152 cases", v.Tried[1]);
        Assert.NotNull(v.NnpackAvailable);
    }

    /// <summary>
    /// The fault of the affected machines, reproduced here: oneDNN reading 1-byte caches (what it reads where
    /// CPUID leaf 0x8000001D is zeroed) gives wrong convolutions, and the check sees it; with oneDNN's own
    /// guesses in its place the same check passes.
    /// </summary>
    [OneDnnTableFact]
    public void TheCheckCatchesOneByteCachesAndTheirFixPasses()
    {
        var planted = (KernelGuard.PlantedCacheVariable, "1,1,1");
        var broken = Child(planted).Probe(KernelConfiguration.Default, 2);
        Assert.False(broken.Passed, "1-byte caches should break some kernel: " + broken.Detail);
        Assert.StartsWith("wrong values: ", broken.Detail);
        var fixedUp = Child(planted).Probe(KernelConfiguration.OneDnnCacheGuesses, 2);
        Assert.True(fixedUp.Passed, fixedUp.Detail);
    }

    [OneDnnTableFact]
    public void OneDnnsTableHoldsWhatCpuIdSays()
    {
        var table = OneDnnCacheTable.Locate(CpuIdentity.Current!, out var why);
        Assert.NotNull(table);
        Assert.Equal("", why);
        if (!CpuIdentity.Current!.AmdCacheLeafEmpty && Environment.GetEnvironmentVariable(KernelGuard.PlantedCacheVariable) is null)
        {
            Assert.InRange(table!.Levels, 1u, 10u);
            Assert.False(table.IsDegenerate);
            Assert.InRange(table.Level(1).Bytes, 16u * 1024, 1024u * 1024);
        }
    }

    /// <summary>mkldnn-off really takes oneDNN out of the convolutions (ONEDNN_VERBOSE lists none), and the default uses it.</summary>
    [Fact]
    public void MkldnnOffRunsNoOneDnnConvolution()
    {
        var env = new Dictionary<string, string?> { ["ONEDNN_VERBOSE"] = "1" };
        var on = CliRunner.Run(AppContext.BaseDirectory, env, KernelGuard.ChildArgument, KernelGuard.Name(Healthy), "1");
        Assert.Equal(0, on.Code);
        Assert.Contains("exec,cpu,convolution", on.Stdout);
        var off = CliRunner.Run(AppContext.BaseDirectory, env, KernelGuard.ChildArgument, "mkldnn-off", "1");
        Assert.Equal(0, off.Code);
        Assert.DoesNotContain("exec,cpu,convolution", off.Stdout);
        Assert.Contains("pass: 152 cases", off.Stdout);
    }

    [Fact]
    public void AnUnavailableNnpackIsSwitchedOff()
    {
        bool before = LibTorchNative.NnpackEnabled;
        try
        {
            // The configuration in force stays (on a machine with 1-byte caches, default would put them back).
            KernelGuard.Apply(new KernelVerdict("cpu", "t", "2.10.0", 2, KernelGuard.CheckVersion, Healthy,
                "test", [], NnpackAvailable: false, 0, DateTimeOffset.UtcNow), log: null);
            Assert.False(LibTorchNative.NnpackEnabled);
        }
        finally
        {
            LibTorchNative.NnpackEnabled = before;
        }
    }
}
