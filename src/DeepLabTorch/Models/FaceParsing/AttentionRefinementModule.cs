using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Models.FaceParsing;

/// <summary>
/// Attention refinement: a 3×3 ConvBNReLU, then a channel attention from the global average of its output
/// (1×1 conv without bias, BatchNorm, sigmoid) that scales it. State names: conv.{conv,bn}, conv_atten, bn_atten.
/// </summary>
internal sealed class AttentionRefinementModule : nn.Module<Tensor, Tensor>
{
    private readonly ConvBNReLU conv;
    private readonly Conv2d conv_atten;
    private readonly BatchNorm2d bn_atten;

    public AttentionRefinementModule(long inChannels, long outChannels) : base(nameof(AttentionRefinementModule))
    {
        conv = new ConvBNReLU(inChannels, outChannels, 3, 1, 1);
        conv_atten = Layers.Conv(outChannels, outChannels, 1);
        bn_atten = new BatchNorm2d(outChannels);
        RegisterComponents();
        BiSeNetInit.Conv(conv_atten);
    }

    public override Tensor forward(Tensor x)
    {
        using var feat = conv.forward(x);
        using var atten = feat.mean(new long[] { 2, 3 }, keepdim: true)
            .Then(conv_atten.Run).Then(bn_atten.forward).Then(t => t.sigmoid());
        return feat.mul(atten);
    }
}
