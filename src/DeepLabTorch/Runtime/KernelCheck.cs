using System.Diagnostics;
using System.Globalization;
using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Runtime;

/// <summary>One convolution of our networks, as the known-answer check runs it.</summary>
internal sealed record ConvShape(string Name, int InChannels, int OutChannels, int Kernel, int Stride, int Dilation, int Groups, int Height, int Width)
{
    public int Padding => Dilation * (Kernel - 1) / 2;

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Name} ({InChannels}->{OutChannels}, {Kernel}x{Kernel}, stride {Stride}, dilation {Dilation}, groups {Groups}, {Height}x{Width})");
}

/// <summary>One run of a shape: batch, precision, layout.</summary>
internal sealed record KernelCase(ConvShape Shape, int Batch, ScalarType Precision, bool ChannelsLast)
{
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Shape} batch {Batch} {(Precision == ScalarType.BFloat16 ? "bfloat16" : "float32")} {(ChannelsLast ? "channels-last" : "NCHW")}");
}

/// <summary>What the check found: null Failure when every case matched.</summary>
internal sealed record KernelCheckResult(int Cases, IReadOnlyList<string> Failures, TimeSpan Elapsed)
{
    public bool Passed => Failures.Count == 0;

    /// <summary>The first failure, or null.</summary>
    public string? Failure => Failures.Count > 0 ? Failures[0] : null;
}

/// <summary>
/// The known-answer check of the convolution kernels our networks use. Each case runs forward and backward
/// (input and weight gradients) in float32 or bfloat16, NCHW or channels-last, and compares with the same
/// convolution in float64, which libtorch computes without oneDNN (its own im2col and BLAS). The shapes are
/// the 1x1, 3x3, strided, dilated and depthwise convolutions of MobileNetV2, ResNet-101, aligned Xception,
/// ASPP and the decoder, at the small sizes where the broken blockings showed (docs/cpu-kernels.md).
/// It runs at the thread count in force; the guard runs it in a child process, since a bad kernel may kill
/// the process (SIGFPE).
/// </summary>
internal static class KernelCheck
{
    /// <summary>Largest |result - float64| over the largest |float64|: float32 accumulates K products in any order.</summary>
    public const double Float32Tolerance = 2e-4;

    /// <summary>bfloat16 keeps 8 significant bits: rounding the output alone costs up to 2^-9 of its value.</summary>
    public const double BFloat16Tolerance = 2e-2;

    /// <summary>
    /// The shapes, at the sizes the networks reach from small inputs (65x97 and 36x48 at output stride 16):
    /// ResNet's first 1x1 after layer 2's stride-2 3x3 is where oneDNN v3.7 divided by zero; MobileNetV2 on a
    /// batch of 2 at 36x48 is where it returned wrong logits.
    /// </summary>
    public static IReadOnlyList<ConvShape> Shapes { get; } =
    [
        new("stem 3x3 stride 2", 3, 32, 3, 2, 1, 1, 36, 48),
        new("resnet stem 7x7 stride 2", 3, 64, 7, 2, 1, 1, 33, 49),
        new("mobilenet expand 1x1", 24, 144, 1, 1, 1, 1, 9, 12),
        new("mobilenet depthwise 3x3", 144, 144, 3, 1, 1, 144, 9, 12),
        new("mobilenet depthwise 3x3 stride 2", 144, 144, 3, 2, 1, 144, 9, 12),
        new("mobilenet depthwise 3x3 dilation 2", 576, 576, 3, 1, 2, 576, 3, 3),
        new("mobilenet project 1x1", 144, 24, 1, 1, 1, 1, 9, 12),
        new("resnet layer2 reduce 1x1", 256, 128, 1, 1, 1, 1, 17, 25),
        new("resnet layer2 3x3 stride 2", 128, 128, 3, 2, 1, 1, 17, 25),
        new("resnet layer2 expand 1x1", 128, 512, 1, 1, 1, 1, 9, 13),
        new("resnet downsample 1x1 stride 2", 256, 512, 1, 2, 1, 1, 17, 25),
        new("resnet layer3 reduce 1x1", 512, 256, 1, 1, 1, 1, 5, 7),
        new("resnet layer4 3x3 dilation 2", 128, 128, 3, 1, 2, 1, 5, 7),
        new("xception depthwise 3x3 dilation 2", 728, 728, 3, 1, 2, 728, 5, 7),
        new("xception pointwise 1x1", 728, 728, 1, 1, 1, 1, 5, 7),
        new("aspp 1x1", 320, 256, 1, 1, 1, 1, 3, 3),
        new("aspp 3x3 dilation 6", 320, 256, 3, 1, 6, 1, 5, 7),
        new("aspp 3x3 dilation 12", 64, 64, 3, 1, 12, 1, 9, 13),
        new("decoder 3x3", 304, 256, 3, 1, 1, 1, 9, 12),
    ];

    /// <summary>Every case: each shape at batch 1 and 2, float32 and bfloat16, NCHW and channels-last.</summary>
    public static IEnumerable<KernelCase> Cases(IEnumerable<ConvShape>? shapes = null)
    {
        foreach (var shape in shapes ?? Shapes)
            foreach (var batch in new[] { 1, 2 })
                foreach (var precision in new[] { ScalarType.Float32, ScalarType.BFloat16 })
                    foreach (var channelsLast in new[] { false, true })
                        yield return new KernelCase(shape, batch, precision, channelsLast);
    }

    /// <summary>
    /// Runs the cases and stops at the first mismatch, or runs them all (<paramref name="all"/>, for diagnosis).
    /// <paramref name="tamper"/> (tests) changes a result before it is compared, to plant a wrong kernel.
    /// </summary>
    /// <param name="reportFailure">
    /// Given each failure ("CASE: WHAT", as in the result's Failures) the moment it is found, before the next case
    /// runs: part of the check child's protocol, which writes it out at once so that a later case that crashes the
    /// process cannot lose it. A result channel, not a logger; the returned result lists the same failures.
    /// </param>
    public static KernelCheckResult Run(IEnumerable<KernelCase>? cases = null, Func<KernelCase, Tensor, Tensor>? tamper = null, bool all = false,
        Action<string>? reportFailure = null)
    {
        var failures = new List<string>();
        TorchRuntime.EnsureLoaded();
        var clock = Stopwatch.StartNew();
        int count = 0;
        using var gradMode = torch.enable_grad();
        foreach (var c in cases ?? Cases())
        {
            count++;
            using var scope = torch.NewDisposeScope();
            var failure = RunCase(c, tamper);
            if (failure is null) continue;
            failures.Add($"{c}: {failure}");
            reportFailure?.Invoke(failures[^1]);
            if (!all) break;
        }
        return new KernelCheckResult(count, failures, clock.Elapsed);
    }

    private static string? RunCase(KernelCase c, Func<KernelCase, Tensor, Tensor>? tamper)
    {
        var s = c.Shape;
        // The same values every run: a seeded generator, inputs of unit scale, weights scaled as He init.
        var generator = new torch.Generator((ulong)(s.InChannels * 131 + s.OutChannels * 7 + s.Kernel + c.Batch * 1000));
        var x = torch.randn([c.Batch, s.InChannels, s.Height, s.Width], dtype: ScalarType.Float64, generator: generator);
        var w = torch.randn([s.OutChannels, s.InChannels / s.Groups, s.Kernel, s.Kernel], dtype: ScalarType.Float64, generator: generator);
        using var scale = Math.Sqrt(2.0 / (s.InChannels / s.Groups * s.Kernel * s.Kernel)).ToScalar();
        w.mul_(scale);
        // Round the inputs to the precision under test, so the float64 answer is the exact one for those values.
        x = x.to(c.Precision).to(ScalarType.Float64);
        w = w.to(c.Precision).to(ScalarType.Float64);
        var (y64, gx64, gw64, upstream) = Convolve(s, x, w, null);

        var xt = x.to(c.Precision);
        var wt = w.to(c.Precision);
        if (c.ChannelsLast)
        {
            xt = xt.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
            wt = wt.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
        }
        var (y, gx, gw, _) = Convolve(s, xt, wt, upstream.to(c.Precision));
        if (tamper is not null) y = tamper(c, y);
        double tolerance = c.Precision == ScalarType.BFloat16 ? BFloat16Tolerance : Float32Tolerance;
        return Compare("output", y, y64, tolerance) ?? Compare("input gradient", gx, gx64, tolerance)
               ?? Compare("weight gradient", gw, gw64, tolerance);
    }

    private static (Tensor Y, Tensor Gx, Tensor Gw, Tensor Upstream) Convolve(ConvShape s, Tensor x, Tensor w, Tensor? upstream)
    {
        x = x.detach().requires_grad_(true);
        w = w.detach().requires_grad_(true);
        var y = nn.functional.conv2d(x, w, null, strides: [s.Stride, s.Stride], padding: [s.Padding, s.Padding],
            dilation: [s.Dilation, s.Dilation], groups: s.Groups);
        upstream ??= torch.randn(y.shape, dtype: y.dtype, generator: new torch.Generator(7));
        var grads = torch.autograd.grad([y], [x, w], [upstream]);
        return (y.detach(), grads[0], grads[1], upstream);
    }

    /// <summary>Null when close enough, else the error and the allowed error, relative to the float64 result's scale.</summary>
    private static string? Compare(string what, Tensor actual, Tensor expected, double tolerance)
    {
        var a = actual.to(ScalarType.Float64);
        if (!a.shape.SequenceEqual(expected.shape))
            return $"{what} has shape [{string.Join(",", a.shape)}], float64 gives [{string.Join(",", expected.shape)}]";
        if (!a.isfinite().all().item<bool>()) return $"{what} has NaN or infinite values";
        double scale = Math.Max(expected.abs().max().item<double>(), 1e-12);
        double error = a.sub(expected).abs().max().item<double>() / scale;
        return error <= tolerance
            ? null
            : string.Create(CultureInfo.InvariantCulture, $"{what} differs from float64 by {error:G3} of its scale (allowed {tolerance:G3})");
    }
}
