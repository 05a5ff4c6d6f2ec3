using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Models.Backbones;

/// <summary>
/// ResNet for DeepLabV3+ (torchvision's Bottleneck layout): 7×7 stem, max pool, layer1–layer3 with a
/// depth's bottleneck counts (ResNet-101: 3, 4, 23; ResNet-50: 3, 4, 6) and layer4 as a multi-grid unit of three
/// bottlenecks with dilations (1, 2, 4) × the stage dilation. Low-level features: layer1 (256
/// channels, stride 4); output: 2048 channels.
/// </summary>
internal sealed class ResNet : Backbone
{
    public static BackboneDescriptor ResNet101 { get; } = Describe("resnet", "ResNet-101", [3, 4, 23]);
    /// <summary>torchvision's resnet50 layout, with the same stem, output-stride schedule and multi-grid layer4.</summary>
    public static BackboneDescriptor ResNet50 { get; } = Describe("resnet50", "ResNet-50", [3, 4, 6]);

    /// <summary>Strides and dilations of layer1..layer4; layer4 multiplies its dilation by the multi-grid.</summary>
    public readonly record struct Schedule(int[] Strides, int[] Dilations);

    public static Schedule ScheduleFor(int outputStride) => Architecture.CheckOutputStride(outputStride) == 16
        ? new(new[] { 1, 2, 2, 1 }, new[] { 1, 1, 1, 2 })
        : new(new[] { 1, 2, 1, 1 }, new[] { 1, 1, 2, 4 });
    public static IReadOnlyList<int> MultiGrid { get; } = new[] { 1, 2, 4 };

    /// <summary>
    /// A ResNet depth: bottleneck counts of layer1..layer3 (layer4 is the multi-grid unit). Its weights are
    /// recognised by the last block of layer3, and told from a deeper ResNet by that block's successor.
    /// </summary>
    private static BackboneDescriptor Describe(string name, string title, int[] blocks) => new(
        Name: name,
        Title: title,
        Factory: (d, os) => new ResNet(d, os, blocks),
        LowLevelChannels: 256,
        HighLevelChannels: 2048,
        LowLevelTap: "layer1",
        WeightKeyPattern: $@"^backbone\.layer3\.{blocks[2] - 1}\.",
        ExcludedKeyPattern: $@"^backbone\.layer3\.{blocks[2]}\.");

    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly MaxPool2d maxpool;
    private readonly Sequential layer1;
    private readonly Sequential layer2;
    private readonly Sequential layer3;
    private readonly Sequential layer4;

    /// <summary>Built through a descriptor: <c>ResNet.ResNet101.Create(16)</c>.</summary>
    private ResNet(BackboneDescriptor descriptor, int outputStride, int[] blocks) : base(nameof(ResNet), descriptor, outputStride)
    {
        var s = ScheduleFor(outputStride);
        long channels = 64;
        conv1 = Layers.Conv(3, 64, 7, stride: 2, padding: 3);
        bn1 = new BatchNorm2d(64);
        maxpool = nn.MaxPool2d(3, 2, 1);
        layer1 = Stage(ref channels, 64, Enumerable.Repeat(1, blocks[0]).ToArray(), s.Strides[0], s.Dilations[0]);
        layer2 = Stage(ref channels, 128, Enumerable.Repeat(1, blocks[1]).ToArray(), s.Strides[1], s.Dilations[1]);
        layer3 = Stage(ref channels, 256, Enumerable.Repeat(1, blocks[2]).ToArray(), s.Strides[2], s.Dilations[2]);
        layer4 = Stage(ref channels, 512, MultiGrid.ToArray(), s.Strides[3], s.Dilations[3]);
        RegisterComponents();
        Layers.InitWeights(this, nn.init.FanInOut.FanOut);
    }

    /// <summary>One stage: the first bottleneck strides (and projects), each gets grid[i] × dilation.</summary>
    private static Sequential Stage(ref long channels, long planes, int[] grid, int stride, int dilation)
    {
        long outChannels = planes * Bottleneck.Expansion;
        var stage = nn.Sequential(Array.Empty<nn.Module<Tensor, Tensor>>());
        bool project = stride != 1 || channels != outChannels;
        stage.append(new Bottleneck(channels, planes, stride, grid[0] * dilation, project));
        channels = outChannels;
        for (int i = 1; i < grid.Length; i++) stage.append(new Bottleneck(channels, planes, 1, grid[i] * dilation));
        return stage;
    }

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

    public override (string High, string Low) WriteGraph(IBackboneGraph g, string input)
    {
        string h = g.MaxPool(g.Relu(g.ConvBn(input, conv1, bn1)), 3, 2, 1);
        string low = h = Stage(g, layer1, h);
        h = Stage(g, layer2, h);
        h = Stage(g, layer3, h);
        return (Stage(g, layer4, h), low);
    }

    private static string Stage(IBackboneGraph g, Sequential stage, string x)
    {
        for (int b = 0; b < stage.Count; b++) x = ((Bottleneck)stage[b]).WriteGraph(g, x);
        return x;
    }
}
