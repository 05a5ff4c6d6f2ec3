using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Models.FaceParsing;

/// <summary>
/// ResNet-18 as BiSeNet's context path uses it: 7×7 stem (stride 2), 3×3 max pool (stride 2), four stages of
/// two basic blocks (64, 128, 256, 512 channels; the last three start with stride 2), no classifier. It returns
/// the features of layer2, layer3 and layer4 (strides 8, 16, 32). State names are torchvision's resnet18 without
/// fc: conv1, bn1, layer1.0.conv1 … layer4.1.bn2, layerN.0.downsample.{0,1} for N = 2, 3, 4.
/// </summary>
internal sealed class ResNet18 : nn.Module
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly MaxPool2d maxpool;
    private readonly Sequential layer1;
    private readonly Sequential layer2;
    private readonly Sequential layer3;
    private readonly Sequential layer4;

    public ResNet18() : base(nameof(ResNet18))
    {
        conv1 = Layers.Conv(3, 64, 7, stride: 2, padding: 3);
        bn1 = new BatchNorm2d(64);
        maxpool = nn.MaxPool2d(3, 2, 1);
        layer1 = Stage(64, 64, 1);
        layer2 = Stage(64, 128, 2);
        layer3 = Stage(128, 256, 2);
        layer4 = Stage(256, 512, 2);
        RegisterComponents();
        // A fresh network gets torchvision's initialisation; the face-parsing reference starts this part from
        // ImageNet weights (torchvision's resnet18 keys, fc left out), which load under "cp.resnet.".
        Layers.InitWeights(this, nn.init.FanInOut.FanOut);
    }

    private static Sequential Stage(long inChannels, long outChannels, long stride) =>
        nn.Sequential(new BasicBlock(inChannels, outChannels, stride), new BasicBlock(outChannels, outChannels, 1));

    /// <summary>The features at strides 8, 16 and 32 (128, 256 and 512 channels), each the caller's to dispose.</summary>
    public (Tensor Feat8, Tensor Feat16, Tensor Feat32) forward(Tensor input)
    {
        Tensor x;
        using (var c = conv1.Run(input))
        using (var r = bn1.forward(c).relu_())
            x = maxpool.forward(r);
        var feat8 = x.Then(layer1.Run).Then(layer2.Run);
        var feat16 = layer3.Run(feat8);
        var feat32 = layer4.Run(feat16);
        return (feat8, feat16, feat32);
    }
}
