using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Models.Backbones;

/// <summary>
/// ResNet bottleneck: 1×1 reduce, 3×3 (stride, dilation), 1×1 expand ×4, BatchNorm after each,
/// ReLU after the first two and after the residual sum. "downsample" (1×1 conv + BatchNorm)
/// projects the shortcut when the shape changes.
/// </summary>
internal sealed class Bottleneck : nn.Module<Tensor, Tensor>
{
    /// <summary>conv3 widens to this many times the block's planes.</summary>
    public const int Expansion = 4;

    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly Conv2d conv3;
    private readonly BatchNorm2d bn3;
    private readonly Sequential? downsample;

    public Bottleneck(long inChannels, long planes, long stride = 1, long dilation = 1, bool withDownsample = false) : base(nameof(Bottleneck))
    {
        long outChannels = planes * Expansion;
        conv1 = Layers.Conv(inChannels, planes, 1);
        bn1 = new BatchNorm2d(planes);
        conv2 = Layers.Conv(planes, planes, 3, stride, padding: dilation, dilation: dilation);
        bn2 = new BatchNorm2d(planes);
        conv3 = Layers.Conv(planes, outChannels, 1);
        bn3 = new BatchNorm2d(outChannels);
        if (withDownsample)
            downsample = nn.Sequential(Layers.Conv(inChannels, outChannels, 1, stride), new BatchNorm2d(outChannels));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var out_ = conv1.Run(x).Then(bn1.forward).relu_()
            .Then(conv2.Run).Then(bn2.forward).relu_()
            .Then(conv3.Run).Then(bn3.forward);
        if (downsample is not null)
        {
            using var r = downsample.Run(x);
            out_.PlusInPlace(r);
        }
        else
        {
            out_.PlusInPlace(x);
        }
        return out_.relu_();
    }

    /// <summary>This block in a graph, BatchNorms folded into the convs.</summary>
    public string WriteGraph(IBackboneGraph g, string x)
    {
        string h = g.Relu(g.ConvBn(x, conv1, bn1));
        h = g.Relu(g.ConvBn(h, conv2, bn2));
        h = g.ConvBn(h, conv3, bn3);
        string shortcut = downsample is not null ? g.ConvBn(x, (Conv2d)downsample[0], (BatchNorm)downsample[1]) : x;
        return g.Relu(g.Add(h, shortcut));
    }
}
