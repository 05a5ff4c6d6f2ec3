using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Models.FaceParsing;

/// <summary>
/// ResNet basic block: two 3×3 convolutions (the first may stride), BatchNorm after each, ReLU after the
/// first and after the residual sum. "downsample" (1×1 conv with the stride, BatchNorm) projects the shortcut
/// when the channels or the resolution change. State names: conv1, bn1, conv2, bn2, downsample.{0,1}.
/// </summary>
internal sealed class BasicBlock : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly Sequential? downsample;

    public BasicBlock(long inChannels, long outChannels, long stride = 1) : base(nameof(BasicBlock))
    {
        conv1 = Layers.Conv(inChannels, outChannels, 3, stride, padding: 1);
        bn1 = new BatchNorm2d(outChannels);
        conv2 = Layers.Conv(outChannels, outChannels, 3, 1, padding: 1);
        bn2 = new BatchNorm2d(outChannels);
        if (inChannels != outChannels || stride != 1)
            downsample = nn.Sequential(Layers.Conv(inChannels, outChannels, 1, stride), new BatchNorm2d(outChannels));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var residual = conv1.Run(x).Then(bn1.forward).relu_()
            .Then(conv2.Run).Then(bn2.forward);
        if (downsample is not null)
        {
            using var shortcut = downsample.Run(x);
            residual.PlusInPlace(shortcut);
        }
        else
        {
            residual.PlusInPlace(x);
        }
        return residual.relu_();
    }
}
