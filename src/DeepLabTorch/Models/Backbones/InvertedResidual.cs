using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Models.Backbones;

/// <summary>
/// MobileNetV2's inverted residual: 1×1 expansion (unless t = 1), 3×3 depthwise (stride or dilation),
/// 1×1 linear projection, each followed by BatchNorm, ReLU6 after the first two; identity shortcut
/// when shape is kept. State names: conv.{0,1,3,4[,6,7]}.
/// </summary>
internal sealed class InvertedResidual : nn.Module<Tensor, Tensor>
{
    private readonly Sequential conv;
    private readonly bool _residual;
    private readonly bool _padInput;
    private readonly long _dilation;

    public InvertedResidual(long inChannels, long outChannels, long stride, long dilation, long expansion) : base(nameof(InvertedResidual))
    {
        if (stride != 1 && stride != 2) throw new ArgumentException($"inverted residual stride must be 1 or 2, got {stride}");
        long hidden = inChannels * expansion;
        _residual = stride == 1 && inChannels == outChannels;
        _dilation = dilation;
        if (expansion == 1)
        {
            // The depthwise conv comes first, so the reference's fixed zero padding equals the conv's
            // own symmetric padding (3×3: dilation on each side), which spares a padded copy.
            _padInput = false;
            conv = nn.Sequential(
                Layers.Conv(hidden, hidden, 3, stride, padding: dilation, dilation: dilation, groups: hidden),
                new BatchNorm2d(hidden),
                nn.ReLU6(inplace: true),
                Layers.Conv(hidden, outChannels, 1),
                new BatchNorm2d(outChannels));
        }
        else
        {
            // The reference pads the block input before the 1×1 expansion, so the padded border passes
            // through conv, BatchNorm and ReLU6 and is not zero at the depthwise conv: keep that order.
            _padInput = true;
            conv = nn.Sequential(
                Layers.Conv(inChannels, hidden, 1),
                new BatchNorm2d(hidden),
                nn.ReLU6(inplace: true),
                Layers.Conv(hidden, hidden, 3, stride, padding: 0, dilation: dilation, groups: hidden),
                new BatchNorm2d(hidden),
                nn.ReLU6(inplace: true),
                Layers.Conv(hidden, outChannels, 1),
                new BatchNorm2d(outChannels));
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        Tensor y;
        if (_padInput)
        {
            using var padded = Layers.PadFixed(x, 3, _dilation);
            y = conv.Run(padded);
        }
        else
        {
            y = conv.Run(x);
        }
        // y is a fresh BatchNorm output that autograd does not keep, so the shortcut can add in place.
        if (_residual) y.PlusInPlace(x);
        return y;
    }

    /// <summary>This block in a graph (BatchNorms folded): the same order of padding, convs and shortcut as forward.</summary>
    public string WriteGraph(IBackboneGraph g, string x)
    {
        Conv2d Conv(int k) => (Conv2d)conv[k];
        BatchNorm Bn(int k) => (BatchNorm)conv[k];
        string y;
        if (!_padInput)
        {
            // expansion 1: depthwise (own symmetric padding), BN, ReLU6, pointwise, BN.
            y = g.Relu6(g.ConvBn(x, Conv(0), Bn(1)));
            y = g.ConvBn(y, Conv(3), Bn(4));
        }
        else
        {
            var (begin, end) = Layers.FixedPadding(3, _dilation);
            var padded = g.Pad(x, begin, end, begin, end);
            y = g.Relu6(g.ConvBn(padded, Conv(0), Bn(1)));
            y = g.Relu6(g.ConvBn(y, Conv(3), Bn(4)));
            y = g.ConvBn(y, Conv(6), Bn(7));
        }
        return _residual ? g.Add(y, x) : y;
    }
}
