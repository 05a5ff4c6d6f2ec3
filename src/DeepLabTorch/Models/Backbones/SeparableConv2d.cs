using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Models.Backbones;

/// <summary>
/// Xception's separable conv: 3×3 depthwise (fixed padding, stride, dilation), BatchNorm, 1×1 pointwise.
/// State names: conv1, bn, pointwise.
/// </summary>
internal sealed class SeparableConv2d : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn;
    private readonly Conv2d pointwise;

    public SeparableConv2d(long inChannels, long outChannels, long kernel = 3, long stride = 1, long dilation = 1) : base(nameof(SeparableConv2d))
    {
        var (begin, end) = Layers.FixedPadding(kernel, dilation);
        if (begin != end) throw new ArgumentException($"separable conv kernel {kernel} needs asymmetric padding, which is not supported");
        // Fixed padding right before the depthwise conv is the conv's own (symmetric) zero padding.
        conv1 = Layers.Conv(inChannels, inChannels, kernel, stride, padding: begin, dilation: dilation, groups: inChannels);
        bn = new BatchNorm2d(inChannels);
        pointwise = Layers.Conv(inChannels, outChannels, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var d = conv1.Run(x);
        using var n = bn.forward(d);
        return pointwise.Run(n);
    }

    /// <summary>Depthwise conv with its BatchNorm, then the pointwise conv with the BatchNorm that follows this module: two folded convs.</summary>
    public string WriteGraph(IBackboneGraph g, string x, BatchNorm after) =>
        g.ConvBn(g.ConvBn(x, conv1, bn), pointwise, after);
}
