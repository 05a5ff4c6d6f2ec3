using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Models;

/// <summary>One ASPP branch: conv (1×1, or 3×3 atrous with padding = rate), BatchNorm, ReLU. State: atrous_conv, bn.</summary>
internal sealed class AsppBranch : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d atrous_conv;
    private readonly BatchNorm2d bn;

    public AsppBranch(long inChannels, long outChannels, long kernel, long rate) : base(nameof(AsppBranch))
    {
        atrous_conv = Layers.Conv(inChannels, outChannels, kernel, 1, padding: kernel == 1 ? 0 : rate, dilation: rate);
        bn = new BatchNorm2d(outChannels);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => atrous_conv.Run(x).Then(bn.forward).relu_();
}
