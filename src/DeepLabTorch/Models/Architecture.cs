namespace DeepLabTorch.Models;

/// <summary>
/// Every architecture number of DeepLabV3+ in one place: ASPP rates per output stride, backbone
/// channel counts, head widths and each backbone's stride/dilation schedule. The values are those
/// of the reference PyTorch implementation (pytorch-deeplab-xception layout).
/// </summary>
public static class Architecture
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

    /// <summary>Dilation rates of the three 3×3 ASPP branches: (6,12,18) at OS16, (12,24,36) at OS8.</summary>
    public static int[] AsppRates(int outputStride) => outputStride switch
    {
        16 => new[] { 6, 12, 18 },
        8 => new[] { 12, 24, 36 },
        _ => throw new UserException($"unsupported output stride {outputStride}: expected 8 or 16"),
    };

    // ------------------------------------------------------------------ MobileNetV2 (width 1.0)
    /// <summary>One row of MobileNetV2's inverted-residual table: expansion t, channels c, repeats n, stride s.</summary>
    public readonly record struct InvertedResidualStage(int Expansion, int Channels, int Repeats, int Stride);

    public const int MobileNetStemChannels = 32;
    public static IReadOnlyList<InvertedResidualStage> MobileNetStages { get; } = new InvertedResidualStage[]
    {
        new(1, 16, 1, 1), new(6, 24, 2, 2), new(6, 32, 3, 2), new(6, 64, 4, 2),
        new(6, 96, 3, 1), new(6, 160, 3, 2), new(6, 320, 1, 1),
    };
    /// <summary>features[0..3] (stem and the first three inverted residuals) give the low-level features.</summary>
    public const int MobileNetLowLevelModules = 4;

    // ------------------------------------------------------------------ Aligned Xception-65
    /// <summary>Entry block 3's stride, the middle flow's dilation and the exit flow's two dilations.</summary>
    public readonly record struct XceptionSchedule(int EntryBlock3Stride, int MiddleDilation, int ExitDilation1, int ExitDilation2);

    public static XceptionSchedule Xception(int outputStride) => outputStride switch
    {
        16 => new(2, 1, 1, 2),
        8 => new(1, 2, 2, 4),
        _ => throw new UserException($"unsupported output stride {outputStride}: expected 8 or 16"),
    };
    public const int XceptionMiddleBlocks = 16;

    // ------------------------------------------------------------------ ResNet-101
    /// <summary>Strides and dilations of layer1..layer4; layer4 multiplies its dilation by the multi-grid.</summary>
    public readonly record struct ResNetSchedule(int[] Strides, int[] Dilations);

    public static ResNetSchedule ResNet(int outputStride) => outputStride switch
    {
        16 => new(new[] { 1, 2, 2, 1 }, new[] { 1, 1, 1, 2 }),
        8 => new(new[] { 1, 2, 1, 1 }, new[] { 1, 1, 2, 4 }),
        _ => throw new UserException($"unsupported output stride {outputStride}: expected 8 or 16"),
    };
    public static IReadOnlyList<int> ResNet101Blocks { get; } = new[] { 3, 4, 23 };
    public static IReadOnlyList<int> ResNetMultiGrid { get; } = new[] { 1, 2, 4 };
    public const int BottleneckExpansion = 4;
}
