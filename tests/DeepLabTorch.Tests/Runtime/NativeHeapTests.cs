using System.Text.Json.Nodes;
using DeepLabTorch.Runtime;
using DeepLabTorch.Tests.Cli;
using Xunit;

namespace DeepLabTorch.Tests.Runtime;

public class NativeHeapTests
{
    private static Dictionary<string, string?> Env(params (string Key, string Value)[] pairs) =>
        pairs.ToDictionary(p => p.Key, p => (string?)p.Value, StringComparer.Ordinal);

    [Fact]
    public void ConfiguresOnlyWhenNothingElseDecides()
    {
        Assert.Null(NativeHeap.ReasonToLeaveAlone(Env(("PATH", "/usr/bin")), linux: true));
        Assert.Null(NativeHeap.ReasonToLeaveAlone(Env(("DEEPLAB_MALLOC", "keep")), linux: true));
        Assert.Null(NativeHeap.ReasonToLeaveAlone(Env(("DEEPLAB_MALLOC", "")), linux: true));
        Assert.Equal("DEEPLAB_MALLOC=system", NativeHeap.ReasonToLeaveAlone(Env(("DEEPLAB_MALLOC", "System")), linux: true));
        Assert.Equal("MALLOC_ARENA_MAX, MALLOC_TRIM_THRESHOLD_ set in the environment",
            NativeHeap.ReasonToLeaveAlone(Env(("MALLOC_TRIM_THRESHOLD_", "1"), ("MALLOC_ARENA_MAX", "2")), linux: true));
        Assert.Equal("LD_PRELOAD=libjemalloc.so.2", NativeHeap.ReasonToLeaveAlone(Env(("LD_PRELOAD", "libjemalloc.so.2")), linux: true));
        Assert.Equal("not Linux", NativeHeap.ReasonToLeaveAlone(Env(), linux: false));
        var e = Assert.Throws<UserException>(() => NativeHeap.ReasonToLeaveAlone(Env(("DEEPLAB_MALLOC", "jemalloc")), linux: true));
        Assert.Contains("'jemalloc'", e.Message);
    }

    /// <summary>The CLI as a child, with no heap setting of the test runner's environment, and DEEPLAB_MALLOC as given.</summary>
    private static (int Code, string Stdout, string Stderr) Deeplab(string? mallocChoice, params string[] args)
    {
        var env = Environment.GetEnvironmentVariables().Keys.Cast<string>()
            .Where(k => k.StartsWith("MALLOC_", StringComparison.Ordinal) || k == "LD_PRELOAD")
            .ToDictionary(k => k, _ => (string?)null);
        env["DEEPLAB_MALLOC"] = mallocChoice;
        return CliRunner.Run(AppContext.BaseDirectory, env, args);
    }

    [LinuxFact("glibc's heap settings (mallopt)")]
    public void TheCommandKeepsFreedMemoryAndInfoSaysSo()
    {
        var kept = Deeplab(null, "info");
        Assert.Equal(0, kept.Code);
        Assert.Contains("native heap: freed memory kept for reuse", kept.Stdout);
        var system = Deeplab("system", "info");
        Assert.Equal(0, system.Code);
        Assert.Contains("native heap: glibc defaults (DEEPLAB_MALLOC=system)", system.Stdout);
        var bad = Deeplab("tcmalloc", "info");
        Assert.Equal(2, bad.Code);
        Assert.Equal("deeplab: DEEPLAB_MALLOC must be 'keep' (the default) or 'system', got 'tcmalloc'", bad.Stderr.Trim());
    }

    /// <summary>
    /// The effect itself, counted in page faults rather than time: repeated forwards of 4×321² (activations of
    /// megabytes, which glibc's defaults map and unmap on every call) touch far fewer fresh pages when freed
    /// memory is kept.
    /// </summary>
    [LinuxFact("glibc's heap settings and page faults from /proc")]
    public void KeptMemoryMeansFewerFreshPagesPerForward()
    {
        long Faults(string? choice)
        {
            var r = Deeplab(choice, "bench", "infer", "size=321", "batch=4", "iters_b1=2", "iters_batch=3", "--threads", "1");
            Assert.True(r.Code == 0, r.Stderr);
            return JsonNode.Parse(r.Stdout)!["batch_page_faults_per_call"]!.GetValue<long>();
        }
        long system = Faults("system"), kept = Faults(null);
        // Measured here: about 44,000 pages per forward with glibc's defaults, 2,200 with the memory kept.
        Assert.True(system > 5000, $"glibc's defaults faulted only {system} pages per forward: the comparison would prove nothing");
        Assert.True(kept * 5 < system, $"kept heap: {kept} page faults per forward against {system} with glibc's defaults");
    }
}
