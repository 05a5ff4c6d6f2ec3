using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DeepLabTorch.Inference;

/// <summary>
/// The one multi-scale + flip test-time augmentation, shared by eval and predict: each scale (and its
/// horizontal mirror) is run, its logits resized back bilinearly, and the logits averaged. Averaging
/// logits rather than softmax probabilities keeps predict's saved logits pre-softmax, and one scale of
/// 1.0 without flip is exactly the plain forward. A scaled side never goes below one pixel.
/// </summary>
internal static class TestTimeAugmentation
{
    /// <summary>Mean logits [N,C,H,W] at the input's size; <paramref name="run"/> maps [N,3,h,w] to [N,C,h',w'].</summary>
    public static Tensor AverageLogits(Func<Tensor, Tensor> run, Tensor images, IReadOnlyList<double> scales, bool flip, bool alignCorners)
    {
        long h = images.size(2), w = images.size(3);
        if (scales.Count == 1 && scales[0] == 1.0 && !flip) return run(images);
        using var scope = NewDisposeScope();
        Tensor? sum = null;
        int passes = 0;
        foreach (var s in scales)
        {
            long sh = Math.Max(1, (long)Math.Round(h * s)), sw = Math.Max(1, (long)Math.Round(w * s));
            var scaled = (sh, sw) == (h, w) ? images : Resize(images, sh, sw, alignCorners);
            foreach (var mirrored in flip ? new[] { false, true } : new[] { false })
            {
                var logits = run(mirrored ? scaled.flip(3) : scaled);
                if (mirrored) logits = logits.flip(3);
                if (logits.size(2) != h || logits.size(3) != w) logits = Resize(logits, h, w, alignCorners);
                sum = sum is null ? logits : sum.Plus(logits); // out of place: the first pass may alias the input
                passes++;
            }
        }
        using var count = ((double)passes).ToScalar(); // named: an implicit temporary can be finalized mid-call
        return sum!.div(count).MoveToOuterDisposeScope();
    }

    private static Tensor Resize(Tensor x, long h, long w, bool alignCorners) =>
        F.interpolate(x, new[] { h, w }, mode: InterpolationMode.Bilinear, align_corners: alignCorners);
}
