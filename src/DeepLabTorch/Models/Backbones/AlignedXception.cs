using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Models.Backbones;

/// <summary>
/// Aligned Xception-65 of DeepLabV3+: entry flow (two convs, blocks 1–3), 16 middle-flow blocks
/// (block4–block19), exit flow (block20 and three separable convs conv3–conv5 with bn3–bn5).
/// Strides become dilation at output strides 8 and 16. Low-level features: relu(block1) (128
/// channels, stride 4); output: 2048 channels.
/// </summary>
internal sealed class AlignedXception : Backbone
{
    /// <summary>Entry block 3's stride, the middle flow's dilation and the exit flow's two dilations.</summary>
    public readonly record struct Schedule(int EntryBlock3Stride, int MiddleDilation, int ExitDilation1, int ExitDilation2);

    public static Schedule ScheduleFor(int outputStride) =>
        Architecture.CheckOutputStride(outputStride) == 16 ? new(2, 1, 1, 2) : new(1, 2, 2, 4);
    public const int MiddleBlocks = 16;

    public static BackboneDescriptor Entry { get; } = new(
        Name: "xception",
        Title: "Xception-65",
        Factory: (d, os) => new AlignedXception(os),
        LowLevelChannels: 128,
        HighLevelChannels: 2048,
        LowLevelTap: "block1",
        WeightKeyPattern: @"^backbone\.block\d+\.");

    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly List<XceptionBlock> _blocks = new();
    private readonly SeparableConv2d conv3;
    private readonly BatchNorm2d bn3;
    private readonly SeparableConv2d conv4;
    private readonly BatchNorm2d bn4;
    private readonly SeparableConv2d conv5;
    private readonly BatchNorm2d bn5;

    public AlignedXception(int outputStride) : base(nameof(AlignedXception), Entry, outputStride)
    {
        var s = ScheduleFor(outputStride);
        conv1 = Layers.Conv(3, 32, 3, stride: 2, padding: 1);
        bn1 = new BatchNorm2d(32);
        conv2 = Layers.Conv(32, 64, 3, stride: 1, padding: 1);
        bn2 = new BatchNorm2d(64);
        // Entry flow.
        _blocks.Add(new XceptionBlock(64, 128, 2, stride: 2, startWithRelu: false));
        _blocks.Add(new XceptionBlock(128, 256, 2, stride: 2, startWithRelu: false));
        _blocks.Add(new XceptionBlock(256, 728, 2, stride: s.EntryBlock3Stride, startWithRelu: true, isLast: true));
        // Middle flow.
        for (int i = 0; i < MiddleBlocks; i++)
            _blocks.Add(new XceptionBlock(728, 728, 3, stride: 1, dilation: s.MiddleDilation));
        // Exit flow.
        _blocks.Add(new XceptionBlock(728, 1024, 2, stride: 1, dilation: s.ExitDilation1, growFirst: false, isLast: true));
        conv3 = new SeparableConv2d(1024, 1536, 3, 1, s.ExitDilation2);
        bn3 = new BatchNorm2d(1536);
        conv4 = new SeparableConv2d(1536, 1536, 3, 1, s.ExitDilation2);
        bn4 = new BatchNorm2d(1536);
        conv5 = new SeparableConv2d(1536, 2048, 3, 1, s.ExitDilation2);
        bn5 = new BatchNorm2d(2048);

        // Registered by hand to keep the reference's order (block1..block20 between bn2 and conv3).
        register_module("conv1", conv1);
        register_module("bn1", bn1);
        register_module("conv2", conv2);
        register_module("bn2", bn2);
        for (int i = 0; i < _blocks.Count; i++) register_module($"block{i + 1}", _blocks[i]);
        register_module("conv3", conv3);
        register_module("bn3", bn3);
        register_module("conv4", conv4);
        register_module("bn4", bn4);
        register_module("conv5", conv5);
        register_module("bn5", bn5);
        Layers.InitWeights(this, nn.init.FanInOut.FanOut);
    }

    private static Tensor ConvBnRelu(nn.Module<Tensor, Tensor> conv, BatchNorm2d bn, Tensor x)
    {
        using var c = conv.Run(x);
        return bn.forward(c).relu_();
    }

    public override BackboneFeatures forward(Tensor input)
    {
        Tensor x;
        using (var a = ConvBnRelu(conv1, bn1, input)) x = ConvBnRelu(conv2, bn2, a);
        Tensor low;
        using (x) low = _blocks[0].forward(x);
        low.relu_();
        x = _blocks[1].forward(low);
        for (int i = 2; i < _blocks.Count; i++)
        {
            var next = _blocks[i].forward(x);
            x.Dispose();
            x = next;
        }
        x.relu_();
        x = x.Then(t => ConvBnRelu(conv3, bn3, t)).Then(t => ConvBnRelu(conv4, bn4, t)).Then(t => ConvBnRelu(conv5, bn5, t));
        return new BackboneFeatures(x, low);
    }

    public override (string High, string Low) WriteGraph(IBackboneGraph g, string input)
    {
        string h = g.Relu(g.ConvBn(input, conv1, bn1));
        h = g.Relu(g.ConvBn(h, conv2, bn2));
        string low = g.Relu(_blocks[0].WriteGraph(g, h));
        h = low;
        for (int i = 1; i < _blocks.Count; i++) h = _blocks[i].WriteGraph(g, h);
        h = g.Relu(h);
        h = g.Relu(conv3.WriteGraph(g, h, bn3));
        h = g.Relu(conv4.WriteGraph(g, h, bn4));
        return (g.Relu(conv5.WriteGraph(g, h, bn5)), low);
    }
}
