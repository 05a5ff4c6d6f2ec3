using System.Diagnostics;
using System.Text.Json.Nodes;
using DeepLabTorch.Extensions;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Cli.Bench;

/// <summary>Per-call cost of tiny ops: the binding's overhead on top of libtorch's dispatcher.</summary>
public sealed class OverheadBenchmark : IBenchmark
{
    public string Name => "overhead";
    public string Description => "per-call cost of 1-element adds and small conv2d calls (adds=N convs=N)";

    public JsonObject Run(IReadOnlyDictionary<string, string> args, ILogger log)
    {
        int adds = args.TryGetValue("adds", out var a) ? int.Parse(a) : 100_000;
        int convs = args.TryGetValue("convs", out var c) ? int.Parse(c) : 10_000;
        using var x = ones(1);
        using var y = ones(1);
        using var input = randn(1, 8, 8, 8);
        using var w = randn(8, 8, 3, 3);
        using var _ = no_grad();

        // x.Plus(y) is x + y with a held alpha (how the project adds; see Extensions/HeldScalars).
        // Warm up both paths, then time the loops; each result is freed at once, as Python's refcount does.
        for (int i = 0; i < 1000; i++) { using var r = x.Plus(y); using var q = nn.functional.conv2d(input, w, null, null, new long[] { 1, 1 }); }
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < adds; i++) { using var r = x.Plus(y); }
        double addUs = sw.Elapsed.TotalMilliseconds * 1000 / adds;
        sw.Restart();
        for (int i = 0; i < convs; i++) { using var r = nn.functional.conv2d(input, w, null, null, new long[] { 1, 1 }); }
        double convUs = sw.Elapsed.TotalMilliseconds * 1000 / convs;
        return new JsonObject
        {
            ["add_us_per_call"] = Math.Round(addUs, 3),
            ["conv2d_us_per_call"] = Math.Round(convUs, 3),
            ["adds"] = adds,
            ["convs"] = convs,
            ["threads"] = get_num_threads(),
        };
    }
}
