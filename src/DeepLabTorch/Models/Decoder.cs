using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DeepLabTorch.Models;

/// <summary>
/// DeepLabV3+ decoder: low-level features → 1×1 conv to 48, BatchNorm, ReLU; ASPP output upsampled
/// bilinearly to their size and concatenated (304 channels); two 3×3 convs of 256 with BatchNorm and
/// ReLU (dropout 0.5, then 0.1); a 1×1 classifier with bias. State names: conv1, bn1,
/// last_conv.{0,1,4,5,8} (last_conv.8 is the classifier).
/// </summary>
internal sealed class Decoder : nn.Module
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Sequential last_conv;
    private readonly bool _alignCorners;

    /// <summary>Index of the classifier inside last_conv.</summary>
    public const int ClassifierIndex = 8;

    public Decoder(long lowLevelChannels, long numClasses, bool alignCorners) : base(nameof(Decoder))
    {
        const int c = Architecture.HeadChannels, low = Architecture.LowLevelProjection;
        _alignCorners = alignCorners;
        conv1 = Layers.Conv(lowLevelChannels, low, 1);
        bn1 = new BatchNorm2d(low);
        last_conv = nn.Sequential(
            Layers.Conv(c + low, c, 3, 1, padding: 1),
            new BatchNorm2d(c),
            nn.ReLU(inplace: true),
            nn.Dropout(Architecture.DecoderDropout1),
            Layers.Conv(c, c, 3, 1, padding: 1),
            new BatchNorm2d(c),
            nn.ReLU(inplace: true),
            nn.Dropout(Architecture.DecoderDropout2),
            nn.Conv2d(c, numClasses, 1, bias: true));
        RegisterComponents();
        Layers.InitWeights(this, nn.init.FanInOut.FanIn);
    }

    /// <summary>The final 1×1 classifier (weight [C,256,1,1], bias [C]).</summary>
    public Conv2d Classifier => (Conv2d)last_conv[ClassifierIndex];

    public Tensor forward(Tensor x, Tensor lowLevel)
    {
        using var low = conv1.Run(lowLevel).Then(bn1.forward).relu_();
        var ls = low.shape;
        using var up = F.interpolate(x, new[] { ls[2], ls[3] }, mode: InterpolationMode.Bilinear, align_corners: _alignCorners);
        using var joined = cat(new[] { up, low }, 1);
        return last_conv.Run(joined);
    }
}
