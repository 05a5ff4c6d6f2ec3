using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Models.FaceParsing;

/// <summary>
/// Feature fusion: the spatial and context features concatenated, a 1×1 ConvBNReLU, and a squeeze-excitation
/// style attention (global average, 1×1 conv to a quarter of the channels, ReLU, 1×1 conv back, sigmoid; no
/// bias, no BatchNorm) whose product with the features is added to them. State names: convblk.{conv,bn}, conv1, conv2.
/// </summary>
internal sealed class FeatureFusionModule : nn.Module
{
    private readonly ConvBNReLU convblk;
    private readonly Conv2d conv1;
    private readonly Conv2d conv2;

    public FeatureFusionModule(long inChannels, long outChannels) : base(nameof(FeatureFusionModule))
    {
        convblk = new ConvBNReLU(inChannels, outChannels, 1, 1, 0);
        conv1 = Layers.Conv(outChannels, outChannels / 4, 1);
        conv2 = Layers.Conv(outChannels / 4, outChannels, 1);
        RegisterComponents();
        BiSeNetInit.Conv(conv1);
        BiSeNetInit.Conv(conv2);
    }

    /// <summary>Fuses the spatial-path features with the context-path features (same resolution).</summary>
    public Tensor forward(Tensor spatial, Tensor context)
    {
        using var joined = cat(new[] { spatial, context }, 1);
        using var feat = convblk.forward(joined);
        using var atten = feat.mean(new long[] { 2, 3 }, keepdim: true)
            .Then(conv1.Run).Then(t => t.relu()).Then(conv2.Run).Then(t => t.sigmoid());
        using var weighted = feat.mul(atten);
        return weighted.Plus(feat);
    }
}
