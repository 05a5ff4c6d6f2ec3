using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Models.Backbones;

/// <summary>
/// ResNet-101 for DeepLabV3+: 7×7 stem, max pool, layer1–layer3 with (3, 4, 23) bottlenecks and
/// layer4 as a multi-grid unit of three bottlenecks with dilations (1, 2, 4) × the stage dilation.
/// Low-level features: layer1 (256 channels, stride 4); output: 2048 channels.
/// </summary>
public sealed class ResNet : Backbone
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly MaxPool2d maxpool;
    private readonly Sequential layer1;
    private readonly Sequential layer2;
    private readonly Sequential layer3;
    private readonly Sequential layer4;

    public ResNet(int outputStride) : base(nameof(ResNet), outputStride)
    {
        var s = Architecture.ResNet(outputStride);
        long channels = 64;
        conv1 = Layers.Conv(3, 64, 7, stride: 2, padding: 3);
        bn1 = new BatchNorm2d(64);
        maxpool = nn.MaxPool2d(3, 2, 1);
        var blocks = Architecture.ResNet101Blocks;
        layer1 = Stage(ref channels, 64, Enumerable.Repeat(1, blocks[0]).ToArray(), s.Strides[0], s.Dilations[0]);
        layer2 = Stage(ref channels, 128, Enumerable.Repeat(1, blocks[1]).ToArray(), s.Strides[1], s.Dilations[1]);
        layer3 = Stage(ref channels, 256, Enumerable.Repeat(1, blocks[2]).ToArray(), s.Strides[2], s.Dilations[2]);
        layer4 = Stage(ref channels, 512, Architecture.ResNetMultiGrid.ToArray(), s.Strides[3], s.Dilations[3]);
        RegisterComponents();
        Layers.InitWeights(this, nn.init.FanInOut.FanOut);
    }

    /// <summary>One stage: the first bottleneck strides (and projects), each gets grid[i] × dilation.</summary>
    private static Sequential Stage(ref long channels, long planes, int[] grid, int stride, int dilation)
    {
        long outChannels = planes * Architecture.BottleneckExpansion;
        var stage = nn.Sequential(Array.Empty<nn.Module<Tensor, Tensor>>());
        bool project = stride != 1 || channels != outChannels;
        stage.append(new Bottleneck(channels, planes, stride, grid[0] * dilation, project));
        channels = outChannels;
        for (int i = 1; i < grid.Length; i++) stage.append(new Bottleneck(channels, planes, 1, grid[i] * dilation));
        return stage;
    }

    public override int LowLevelChannels => 256;
    public override int OutputChannels => 2048;

    public override BackboneFeatures forward(Tensor input)
    {
        Tensor x;
        using (var c = conv1.Run(input))
        using (var r = bn1.forward(c).relu_())
            x = maxpool.forward(r);
        Tensor low;
        using (x) low = layer1.forward(x);
        x = layer2.forward(low);
        x = x.Then(layer3.forward).Then(layer4.forward);
        return new BackboneFeatures(x, low);
    }
}
