using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DeepLabTorch.Inference;

/// <summary>
/// Runs a segmentation network (any ILogitsEngine) under inference mode: whole-image or sliding-window,
/// optional resize of the short side, multi-scale and flip test-time augmentation. Logits always
/// come back at the size of the input, pre-softmax, averaged over every augmented pass.
/// </summary>
public sealed class Predictor
{
    private readonly ILogitsEngine _engine;

    /// <summary>A TorchSharp module (put in eval mode) on <paramref name="device"/> (default: the CPU).</summary>
    public Predictor(nn.Module<Tensor, Tensor> model, PredictOptions? options = null, Device? device = null)
        : this(new TorchLogitsEngine(model, device), options)
    {
    }

    /// <summary>Any engine, for example an exported model in ONNX Runtime (OnnxLogitsEngine).</summary>
    internal Predictor(ILogitsEngine engine, PredictOptions? options = null)
    {
        _engine = engine;
        Options = (options ?? new PredictOptions()).Validate();
        Device = engine.Device;
    }

    /// <summary>The test-time augmentation and resizing this predictor applies.</summary>
    public PredictOptions Options { get; }
    /// <summary>Where the model runs.</summary>
    public Device Device { get; }

    /// <summary>
    /// Logits [N,C,H,W] float32 on the CPU for normalized images [N,3,H,W] (any device). The caller
    /// owns the result (it leaves every dispose scope).
    /// </summary>
    public Tensor Logits(Tensor images)
    {
        if (images.dim() != 4 || images.size(1) != 3)
            throw new ArgumentException($"images must be [N,3,H,W], got [{string.Join(",", images.shape)}]");
        using var scope = NewDisposeScope();
        Tensor raw;
        using (inference_mode()) raw = Core(images);
        // Inference tensors cannot be changed in place outside inference mode: hand back a normal copy.
        return raw.clone().MoveToOuterDisposeScope();
    }

    private Tensor Core(Tensor images)
    {
        long h = images.size(2), w = images.size(3);
        var x = images.to(ScalarType.Float32, Device);

        // The working size: the original, or the short side resized.
        long bh = h, bw = w;
        if (Options.ResizeShort is int shortSide)
            (bh, bw) = ResizedShort(h, w, shortSide);
        var baseInput = (bh, bw) == (h, w) ? x : Resize(x, bh, bw);

        var mean = TestTimeAugmentation.AverageLogits(Run, baseInput, Options.Scales, Options.Flip, Options.AlignCorners);
        if (mean.size(2) != h || mean.size(3) != w) mean = Resize(mean, h, w);
        return mean.to(ScalarType.Float32, CPU);
    }

    /// <summary>Logits [C,H,W] for one normalized image [1,3,H,W] or [3,H,W].</summary>
    public Tensor LogitsOne(Tensor image)
    {
        using var scope = NewDisposeScope();
        var batch = image.dim() == 3 ? image.unsqueeze(0) : image;
        var logits = Logits(batch);
        var one = logits.select(0, 0).contiguous();
        return one.MoveToOuterDisposeScope();
    }

    /// <summary>The size with the short side scaled to shortSide and the aspect ratio kept.</summary>
    internal static (long Height, long Width) ResizedShort(long h, long w, int shortSide)
    {
        double f = (double)shortSide / Math.Min(h, w);
        return (Math.Max(1, (long)Math.Round(h * f)), Math.Max(1, (long)Math.Round(w * f)));
    }

    private Tensor Resize(Tensor x, long h, long w) =>
        F.interpolate(x, new[] { h, w }, mode: InterpolationMode.Bilinear, align_corners: Options.AlignCorners);

    private Tensor Run(Tensor x) => Options.WindowSize is int win ? Slide(x, win) : Forward(x);

    private Tensor Forward(Tensor x)
    {
        var y = _engine.Forward(x);
        if (y.dim() != 4 || y.size(0) != x.size(0))
            throw new InvalidOperationException($"the model returned [{string.Join(",", y.shape)}] for input [{string.Join(",", x.shape)}]; expected [N,C,h,w]");
        if (y.size(2) != x.size(2) || y.size(3) != x.size(3)) y = Resize(y, x.size(2), x.size(3));
        return y;
    }

    /// <summary>
    /// Sliding windows of win×win with the configured overlap. An image smaller than a window is padded
    /// with zeros (the mean colour after normalization); overlapping logits are averaged.
    /// </summary>
    private Tensor Slide(Tensor x, int win)
    {
        long h = x.size(2), w = x.size(3);
        long ph = Math.Max(h, win), pw = Math.Max(w, win);
        var padded = (ph, pw) == (h, w) ? x : F.pad(x, new[] { 0L, pw - w, 0L, ph - h });
        long stride = Math.Max(1, (long)Math.Ceiling(win * (1 - Options.WindowOverlap)));
        Tensor? sum = null;
        Tensor? count = null;
        foreach (var y0 in Starts(ph, win, stride))
            foreach (var x0 in Starts(pw, win, stride))
            {
                var crop = padded.narrow(2, y0, win).narrow(3, x0, win);
                var logits = Forward(crop);
                if (sum is null)
                {
                    sum = zeros(new[] { x.size(0), logits.size(1), ph, pw }, ScalarType.Float32, logits.device);
                    count = zeros(new[] { 1L, 1, ph, pw }, ScalarType.Float32, logits.device);
                }
                sum.narrow(2, y0, win).narrow(3, x0, win).PlusInPlace(logits);
                count!.narrow(2, y0, win).narrow(3, x0, win).PlusInPlace(HeldScalars.One);
            }
        var mean = sum!.div(count!);
        return (ph, pw) == (h, w) ? mean : mean.narrow(2, 0, h).narrow(3, 0, w);
    }

    /// <summary>Window origins along one axis: every stride, plus one flush with the end.</summary>
    internal static IEnumerable<long> Starts(long length, long win, long stride)
    {
        long last = length - win;
        for (long s = 0; s < last; s += stride) yield return s;
        yield return last;
    }
}
