using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using DeepLabTorch.Extensions;
using DeepLabTorch.Inference;
using DeepLabTorch.Runtime;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Cli.Bench;

/// <summary>
/// Poisson against alpha blending on synthetic frames: the cost per frame, the CG iterations, the seam error
/// (PoissonBlend.SeamError) of both, and how far the default tolerance's answer is from a converged one.
/// </summary>
public sealed class BlendBenchmark : IBenchmark
{
    public string Name => "blend";
    public string Description => "Poisson vs alpha compositing per frame and seam error (sizes=1280x720,1920x1080 runs=5 band=auto)";

    public JsonObject Run(IReadOnlyDictionary<string, string> args, ILogger log)
    {
        var sizes = (args.TryGetValue("sizes", out var s) ? s : "1280x720,1920x1080").Split(',', StringSplitOptions.RemoveEmptyEntries);
        int runs = args.TryGetValue("runs", out var r) ? int.Parse(r, CultureInfo.InvariantCulture) : 5;
        int? band = args.TryGetValue("band", out var b) && b != "auto" ? int.Parse(b, CultureInfo.InvariantCulture) : null;
        var results = new JsonArray();
        foreach (var size in sizes)
        {
            var wh = size.Split('x');
            if (wh.Length != 2) throw new UserException($"bench blend: size '{size}' is not WIDTHxHEIGHT");
            int w = int.Parse(wh[0], CultureInfo.InvariantCulture), h = int.Parse(wh[1], CultureInfo.InvariantCulture);
            results.Add(Measure(h, w, runs, new PoissonOptions { BandRadius = band }));
            log.LogInformation("bench blend: {Size} done", size);
        }
        return new JsonObject
        {
            ["cpu"] = CpuIdentity.Current?.Describe() ?? "not x86",
            ["threads"] = get_num_threads(),
            ["runs"] = runs,
            ["seam_error"] = "mean over 4-neighbour pairs split by the alpha=0.5 outline and channels of |du - (a dfg plus (1-a) dbg)|, a the mean alpha of the pair",
            ["sizes"] = results,
        };
    }

    private static JsonObject Measure(int h, int w, int runs, PoissonOptions options)
    {
        using var scope = NewDisposeScope();
        using var grad = no_grad();
        var (fg, bg, alpha) = Scene(h, w);
        var alphaMs = Time(runs, () => Matter.Composite(fg, bg, alpha).Dispose());
        PoissonReport report = new(0, 0, 0);
        var poissonMs = Time(runs, () => PoissonBlend.CompositeWithReport(fg, bg, alpha, options, out report).Dispose());
        var plain = Matter.Composite(fg, bg, alpha);
        var poisson = PoissonBlend.Composite(fg, bg, alpha, options);
        var converged = PoissonBlend.Composite(fg, bg, alpha, options with { Tolerance = 1e-6, MaxIterations = 500 });
        using Scalar levels = 255.0.ToScalar();
        return new JsonObject
        {
            ["width"] = w,
            ["height"] = h,
            ["band_radius"] = options.BandRadius ?? PoissonOptions.AutoBandRadius(h, w),
            ["band_pixels"] = report.BandPixels,
            ["cg_iterations"] = report.Iterations,
            ["cg_rms_residual"] = report.Residual,
            ["alpha_ms_median"] = alphaMs,
            ["poisson_ms_median"] = poissonMs,
            ["seam_error_alpha"] = Math.Round(PoissonBlend.SeamError(plain, fg, bg, alpha), 5),
            ["seam_error_poisson"] = Math.Round(PoissonBlend.SeamError(poisson, fg, bg, alpha), 5),
            ["max_abs_vs_converged_in_255ths"] = Math.Round((poisson - converged).abs().max().mul(levels).item<float>(), 3),
            ["max_abs_vs_alpha_in_255ths"] = Math.Round((poisson - plain).abs().max().mul(levels).item<float>(), 1),
        };
    }

    private static double Time(int runs, Action run)
    {
        run(); // warm-up
        var times = new List<double>();
        for (int i = 0; i < runs; i++)
        {
            var clock = Stopwatch.StartNew();
            run();
            times.Add(clock.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        return Math.Round(times[times.Count / 2], 1);
    }

    /// <summary>
    /// A synthetic frame [1,3,H,W] in [0,1]: a textured photo, a differently textured background 0.25 brighter
    /// (the lighting mismatch a pasted person shows), and an elliptic person matte with a 2-pixel soft edge.
    /// </summary>
    public static (Tensor Fg, Tensor Bg, Tensor Alpha) Scene(long h, long w, double offset = 0.25)
    {
        using var scope = NewDisposeScope();
        var held = new List<Scalar>();
        Scalar S(double v)
        {
            var k = v.ToScalar();
            held.Add(k);
            return k;
        }
        try
        {
            var y = arange(S(0), S(h), S(1), ScalarType.Float32).view(1, 1, h, 1);
            var x = arange(S(0), S(w), S(1), ScalarType.Float32).view(1, 1, 1, w);
            var c = arange(S(0), S(3), S(1), ScalarType.Float32).view(1, 3, 1, 1);
            var fg = x.div(S(17)).Plus(c).sin_().mul(y.div(S(23)).cos()).mul_(S(0.3)).PlusInPlace(S(0.5));
            var bg = x.div(S(29)).sub(c).cos_().mul(y.div(S(31)).sin()).mul_(S(0.2)).PlusInPlace(S(0.3 + offset));
            var dx = x.sub(S(w / 2.0)).div_(S(0.25 * w)).square();
            var dy = y.sub(S(h / 2.0)).div_(S(0.4 * h)).square();
            var d = dx.Plus(dy).sqrt_();
            var alpha = d.neg().PlusInPlace(HeldScalars.One).mul_(S(0.125 * w)).PlusInPlace(S(0.5)).clamp_(HeldScalars.Zero, HeldScalars.One);
            return (fg.clamp_(HeldScalars.Zero, HeldScalars.One).MoveToOuterDisposeScope(), bg.clamp_(HeldScalars.Zero, HeldScalars.One).MoveToOuterDisposeScope(),
                alpha.contiguous().MoveToOuterDisposeScope());
        }
        finally
        {
            foreach (var k in held) k.Dispose();
        }
    }
}
