namespace DeepLabTorch.Inference;

/// <summary>
/// How the Predictor runs a model over an image. Inputs are normalized NCHW float32 (RGB, /255,
/// ImageNet mean/std); outputs are logits at the input's own size.
/// </summary>
public sealed record PredictOptions
{
    /// <summary>Test-time scales, applied after ResizeShort; logits are averaged over scales (and flips).</summary>
    public IReadOnlyList<double> Scales { get; init; } = new[] { 1.0 };

    /// <summary>Also run the horizontally mirrored image and average its (mirrored back) logits.</summary>
    public bool Flip { get; init; }

    /// <summary>Resize so the shorter side has this many pixels before the model; logits return to the original size. Null: no resize.</summary>
    public int? ResizeShort { get; init; }

    /// <summary>Sliding-window inference with square windows of this size; null runs the whole image at once.</summary>
    public int? WindowSize { get; init; }

    /// <summary>Fraction of a window shared with its neighbour, in [0, 1).</summary>
    public double WindowOverlap { get; init; } = 1.0 / 3.0;

    /// <summary>align_corners for the bilinear resizes of inputs and logits (the reference model uses true).</summary>
    public bool AlignCorners { get; init; } = true;

    /// <summary>Throws a UserException naming the first invalid setting.</summary>
    public PredictOptions Validate()
    {
        if (Scales.Count == 0) throw new UserException("at least one test-time scale is needed");
        foreach (var s in Scales)
            if (!(s > 0) || double.IsInfinity(s)) throw new UserException($"test-time scale {s} must be a positive number");
        if (ResizeShort is int r && r < 1) throw new UserException($"--resize {r} must be a positive number of pixels");
        if (WindowSize is int w && w < 1) throw new UserException($"sliding window size {w} must be a positive number of pixels");
        if (!(WindowOverlap >= 0 && WindowOverlap < 1)) throw new UserException($"window overlap {WindowOverlap} must lie in [0, 1)");
        return this;
    }

    /// <summary>True when the options add nothing to a single forward pass.</summary>
    public bool IsPlain => Scales.Count == 1 && Scales[0] == 1.0 && !Flip && ResizeShort == null && WindowSize == null;
}
