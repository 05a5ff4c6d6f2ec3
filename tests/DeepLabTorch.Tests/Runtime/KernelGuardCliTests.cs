using System.Text.Json;
using DeepLabTorch.Data;
using DeepLabTorch.Runtime;
using DeepLabTorch.Tests.Cli;
using DeepLabTorch.Tests.Inference;
using Xunit;
using Xunit.Abstractions;
using static DeepLabTorch.Tests.Inference.InferenceTestUtil;

namespace DeepLabTorch.Tests.Runtime;

/// <summary>
/// The case of the affected machines, as a user runs it: `predict --batch-size 2 --scales 0.75` on two 64x48
/// images (one batch of 2 at 36x48), with oneDNN reading 1-byte caches as it does where CPUID hides the cache
/// topology. Unguarded, the logits are wrong; guarded, they match the healthy run.
/// </summary>
public class KernelGuardCliTests(ITestOutputHelper output)
{
    private static (int Code, string Stdout, string Stderr) Deeplab(string cacheHome, bool planted, string? kernels, params string[] args)
    {
        var env = new Dictionary<string, string?>
        {
            ["XDG_CACHE_HOME"] = cacheHome,
            [KernelGuard.PlantedCacheVariable] = planted ? "1,1,1" : null,
            [KernelGuard.OverrideVariable] = kernels,
        };
        return CliRunner.Run(AppContext.BaseDirectory, env, args);
    }

    private static double RelativeDifference(string a, string b)
    {
        var (sa, va) = ReadNpy(a);
        var (sb, vb) = ReadNpy(b);
        Assert.Equal(sa, sb);
        double diff = 0, scale = 0;
        for (int i = 0; i < va.Length; i++)
        {
            diff = Math.Max(diff, Math.Abs(va[i] - vb[i]));
            scale = Math.Max(scale, Math.Abs(va[i]));
        }
        return diff / Math.Max(scale, 1e-12);
    }

    [OneDnnTableFact]
    public void PredictIsRightWithOneByteCachesOnlyUnderTheGuard()
    {
        using var dir = new TempDir();
        var input = Directory.CreateDirectory(dir["in"]).FullName;
        ImageCodec.WritePng(Path.Combine(input, "a.png"), TestImage(48, 64, 1), 48, 64);
        ImageCodec.WritePng(Path.Combine(input, "b.png"), TestImage(48, 64, 2), 48, 64);
        var weights = OnnxPredictTests.SaveTrainedLooking(dir.Path, 11);
        string[] Predict(string outDir) =>
            ["predict", "--weights", weights, "--input", input, "--output", dir[outDir], "--batch-size", "2", "--scales", "0.75", "--save-logits", "--threads", "2"];

        var healthy = Deeplab(dir["cache-healthy"], planted: false, kernels: null, Predict("healthy"));
        Assert.True(healthy.Code == 0, healthy.Stderr);

        var broken = Deeplab(dir["cache-broken"], planted: true, kernels: "default", Predict("broken"));
        Assert.True(broken.Code == 0, broken.Stderr);
        double brokenError = Math.Max(RelativeDifference(dir["healthy/a.npy"], dir["broken/a.npy"]), RelativeDifference(dir["healthy/b.npy"], dir["broken/b.npy"]));
        output.WriteLine($"unguarded, 1-byte caches: logits off by {brokenError:G3} of their scale");
        Assert.True(brokenError > 0.01, $"planting 1-byte caches should reproduce the wrong logits (off by {brokenError})");

        var guarded = Deeplab(dir["cache-guarded"], planted: true, kernels: null, Predict("guarded"));
        Assert.True(guarded.Code == 0, guarded.Stderr);
        Assert.Contains("CPU kernels: onednn-cache-guesses at 2 thread(s)", guarded.Stderr); // a log message: stderr
        foreach (var stem in new[] { "a", "b" })
        {
            double error = RelativeDifference(dir[$"healthy/{stem}.npy"], dir[$"guarded/{stem}.npy"]);
            output.WriteLine($"guarded {stem}: {error:G3} of the scale");
            Assert.True(error < 1e-4, $"{stem}.npy: guarded logits off by {error} of their scale");
        }
        var verdicts = JsonSerializer.Deserialize<List<KernelVerdict>>(File.ReadAllText(Path.Combine(dir["cache-guarded"], "deeplabtorch", "cpu-kernels.json")))!;
        var verdict = Assert.Single(verdicts);
        Assert.Equal(KernelConfiguration.OneDnnCacheGuesses, verdict.Configuration);
        Assert.Equal("planted: 1,1,1 bytes (DEEPLAB_TEST_ONEDNN_CACHE_BYTES)", verdict.CacheTable);

        // The next process reuses the verdict: no new check, the same line, and info shows it.
        var info = Deeplab(dir["cache-guarded"], planted: true, kernels: null, "info");
        Assert.Equal(0, info.Code);
        Assert.Contains("CPU kernels: onednn-cache-guesses (oneDNN read caches of one byte", info.Stdout);
        Assert.Contains("as first read: L1 1 B/1", info.Stdout);
        Assert.Equal(verdict.Decided, JsonSerializer.Deserialize<List<KernelVerdict>>(
            File.ReadAllText(Path.Combine(dir["cache-guarded"], "deeplabtorch", "cpu-kernels.json")))!.Single().Decided);
    }

    [Fact]
    public void InfoShowsTheVerdictAndABadOverrideIsOneLine()
    {
        using var dir = new TempDir();
        var info = Deeplab(dir["cache"], planted: false, kernels: "mkldnn-off", "info");
        Assert.Equal(0, info.Code);
        Assert.Contains("CPU kernels: mkldnn-off (DEEPLAB_CPU_KERNELS=mkldnn-off, not checked)", info.Stdout);
        Assert.Contains($"CPU-kernel verdicts cached in {Path.Combine(dir["cache"], "deeplabtorch", "cpu-kernels.json")}", info.Stdout);
        var bad = Deeplab(dir["cache"], planted: false, kernels: "turbo", "info");
        Assert.Equal(2, bad.Code);
        Assert.Equal("deeplab: DEEPLAB_CPU_KERNELS='turbo': expected auto, check, default, onednn-cache-guesses, mkldnn-off, isa-avx", bad.Stderr.Trim());
    }
}
