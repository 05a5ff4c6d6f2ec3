namespace DeepLabTorch.Models;

/// <summary>
/// The architecture numbers of DeepLabV3+ outside the backbones, in one place: output strides, ASPP
/// rates per output stride, head widths, dropout and the head's learning-rate factor. The values are
/// those of the reference PyTorch implementation (pytorch-deeplab-xception layout). Each backbone's
/// own numbers (channels, schedule, taps) live in its module and its BackboneDescriptor.
/// </summary>
internal static class Architecture
{
    public static IReadOnlyList<int> OutputStrides { get; } = new[] { 8, 16 };

    /// <summary>Width of every ASPP branch, of the ASPP projection and of the decoder's 3×3 convs.</summary>
    public const int HeadChannels = 256;
    /// <summary>The decoder projects low-level features to this many channels.</summary>
    public const int LowLevelProjection = 48;
    /// <summary>Low-level features always come at stride 4.</summary>
    public const int LowLevelStride = 4;
    /// <summary>ASPP and decoder train at this multiple of the backbone's learning rate.</summary>
    public const double HeadLearningRateMultiplier = 10.0;
    public const double AsppDropout = 0.5;
    public const double DecoderDropout1 = 0.5;
    public const double DecoderDropout2 = 0.1;

    /// <summary>The output strides every backbone supports, as a setting's choices ("8|16").</summary>
    public const string OutputStrideChoices = "8|16";

    /// <summary>The one output-stride check: every backbone's schedule and the ASPP rates exist for 8 and 16 only.</summary>
    public static int CheckOutputStride(int outputStride) =>
        outputStride is 8 or 16 ? outputStride : throw new UserException($"unsupported output stride {outputStride}: expected 8 or 16");

    /// <summary>Dilation rates of the three 3×3 ASPP branches: (6,12,18) at OS16, (12,24,36) at OS8.</summary>
    public static int[] AsppRates(int outputStride) => CheckOutputStride(outputStride) == 16 ? new[] { 6, 12, 18 } : new[] { 12, 24, 36 };
}
