using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Models.Backbones;

/// <summary>
/// A residual block of aligned Xception: "rep" is a Sequential of (ReLU, SeparableConv2d, BatchNorm)
/// triples (the first ReLU dropped when the block does not start with one), plus a strided triple
/// when stride is 2 and an extra triple for the last block of a flow. The shortcut is a 1×1 conv +
/// BatchNorm ("skip", "skipbn") when the shape changes, otherwise the identity.
/// </summary>
internal sealed class XceptionBlock : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d? skip;
    private readonly BatchNorm2d? skipbn;
    private readonly Sequential rep;

    public XceptionBlock(long inChannels, long outChannels, int reps, long stride = 1, long dilation = 1,
        bool startWithRelu = true, bool growFirst = true, bool isLast = false) : base(nameof(XceptionBlock))
    {
        if (outChannels != inChannels || stride != 1)
        {
            skip = Layers.Conv(inChannels, outChannels, 1, stride);
            skipbn = new BatchNorm2d(outChannels);
        }
        var layers = new List<nn.Module<Tensor, Tensor>>();
        void Triple(long cin, long cout, long s, long d)
        {
            layers.Add(nn.ReLU(inplace: true));
            layers.Add(new SeparableConv2d(cin, cout, 3, s, d));
            layers.Add(new BatchNorm2d(cout));
        }
        long filters = inChannels;
        if (growFirst)
        {
            Triple(inChannels, outChannels, 1, dilation);
            filters = outChannels;
        }
        for (int i = 0; i < reps - 1; i++) Triple(filters, filters, 1, dilation);
        if (!growFirst) Triple(inChannels, outChannels, 1, dilation);
        // As in the reference, the strided and the "last" separable convs are not dilated.
        if (stride != 1) Triple(outChannels, outChannels, stride, 1);
        if (stride == 1 && isLast) Triple(outChannels, outChannels, 1, 1);
        if (!startWithRelu) layers.RemoveAt(0);
        rep = nn.Sequential(layers.ToArray());
        RegisterComponents();
    }

    /// <summary>
    /// Like the reference, a block that starts with ReLU applies it in place to its input, so the
    /// shortcut also sees relu(input); the caller's tensor is modified.
    /// </summary>
    public override Tensor forward(Tensor input)
    {
        var x = rep.Run(input);
        if (skip is not null && skipbn is not null)
        {
            using var s = skip.Run(input);
            using var sb = skipbn.forward(s);
            x.PlusInPlace(sb);
        }
        else
        {
            x.PlusInPlace(input);
        }
        return x;
    }

    /// <summary>This block in a graph (BatchNorms folded), with forward's in-place leading ReLU seen by the shortcut too.</summary>
    public string WriteGraph(IBackboneGraph g, string x)
    {
        int k = 0;
        if (rep[0] is ReLU)
        {
            x = g.Relu(x);
            k = 1;
        }
        string h = x;
        for (; k < rep.Count; k++)
        {
            switch (rep[k])
            {
                case ReLU:
                    h = g.Relu(h);
                    break;
                case SeparableConv2d sep:
                    h = sep.WriteGraph(g, h, (BatchNorm)rep[k + 1]);
                    k++; // the BatchNorm that follows is folded into the pointwise conv
                    break;
                default:
                    throw new InvalidOperationException($"unexpected {rep[k].GetType().Name} in an Xception block");
            }
        }
        string shortcut = skip is not null && skipbn is not null ? g.ConvBn(x, skip, skipbn) : x;
        return g.Add(h, shortcut);
    }
}
