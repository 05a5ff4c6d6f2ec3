using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DeepLabTorch.Models.FaceParsing;

/// <summary>The two STDC backbones: STDC1 ("STDCNet813", 2-2-2 blocks) and STDC2 ("STDCNet1446", 4-5-3 blocks).</summary>
internal enum StdcVariant
{
    Stdc1,
    Stdc2,
}

/// <summary>
/// STDC's basic unit ("ConvX"): a bias-free convolution padded by kernel/2, BatchNorm, ReLU. Keys: conv.*, bn.*.
/// </summary>
internal sealed class StdcConvX : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv;
    private readonly BatchNorm2d bn;

    public StdcConvX(long inChannels, long outChannels, long kernel = 3, long stride = 1) : base(nameof(StdcConvX))
    {
        conv = Layers.Conv(inChannels, outChannels, kernel, stride, padding: kernel / 2);
        bn = new BatchNorm2d(outChannels);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => conv.Run(x).Then(bn.forward).relu_();
}

/// <summary>
/// STDC's "CatBottleneck": a chain of ConvX (a 1×1 to half the output width, then 3×3s halving the width, the
/// last one keeping its input width: out/2, out/4, out/8, out/8 for four) whose outputs are concatenated. A stride-2
/// block strides once, with a depthwise 3×3 convolution + BatchNorm ("avd_layer", no ReLU) between the first and
/// second ConvX, and puts the first ConvX's output through a 3×3 average pool (stride 2, padding 1, padding
/// counted) for the concatenation; every ConvX itself has stride 1. Keys: conv_list.{i}.*, then avd_layer.{0,1}.*.
/// </summary>
internal sealed class StdcCatBottleneck : nn.Module<Tensor, Tensor>
{
    // Declaration order is registration order, as the reference's state_dict lists them.
    private readonly ModuleList<StdcConvX> conv_list;
    private readonly Sequential? avd_layer;

    public StdcCatBottleneck(long inChannels, long outChannels, int stride, int convs = 4) : base(nameof(StdcCatBottleneck))
    {
        if (stride is not (1 or 2)) throw new ArgumentOutOfRangeException(nameof(stride), stride, "an STDC block has stride 1 or 2");
        if (convs < 2) throw new ArgumentOutOfRangeException(nameof(convs), convs, "an STDC block has at least 2 convolutions");
        var widths = Widths(outChannels, convs);
        conv_list = nn.ModuleList<StdcConvX>();
        long previous = inChannels;
        for (int i = 0; i < convs; i++)
        {
            conv_list.append(new StdcConvX(previous, widths[i], i == 0 ? 1 : 3));
            previous = widths[i];
        }
        if (stride == 2)
        {
            long half = outChannels / 2;
            avd_layer = nn.Sequential(Layers.Conv(half, half, 3, stride: 2, padding: 1, groups: half), new BatchNorm2d(half));
        }
        RegisterComponents();
    }

    /// <summary>Output widths of the block's convolutions: out/2, then halving, the last repeating the one before.</summary>
    public static long[] Widths(long outChannels, int convs)
    {
        var w = new long[convs];
        w[0] = outChannels / 2;
        for (int i = 1; i < convs - 1; i++) w[i] = outChannels >> (i + 1);
        w[convs - 1] = w[convs - 2];
        return w;
    }

    public override Tensor forward(Tensor x)
    {
        int n = conv_list.Count;
        var parts = new Tensor?[n];
        try
        {
            var first = conv_list[0].forward(x);
            if (avd_layer is null)
            {
                parts[0] = first;
                parts[1] = conv_list[1].forward(first);
            }
            else
            {
                using (first)
                {
                    using (var strided = avd_layer.Run(first)) parts[1] = conv_list[1].forward(strided);
                    parts[0] = F.avg_pool2d(first, [3, 3], [2, 2], [1, 1], ceil_mode: false, count_include_pad: true);
                }
            }
            for (int i = 2; i < n; i++) parts[i] = conv_list[i].forward(parts[i - 1]!);
            return cat(parts!, 1);
        }
        finally
        {
            foreach (var p in parts) p?.Dispose();
        }
    }
}

/// <summary>The backbone's features at strides 2, 4, 8, 16 and 32 (32, 64, 256, 512 and 1024 channels); Dispose frees all five.</summary>
internal sealed record StdcFeatures(Tensor F2, Tensor F4, Tensor F8, Tensor F16, Tensor F32) : IDisposable
{
    public void Dispose()
    {
        F2.Dispose();
        F4.Dispose();
        F8.Dispose();
        F16.Dispose();
        F32.Dispose();
    }
}

/// <summary>
/// The STDC backbone ("STDCNet813" for STDC1, "STDCNet1446" for STDC2), base width 64: two stride-2 ConvX
/// (3→32→64), then three stages of CatBottlenecks of four convolutions (256, 512, 1024 channels), each stage's
/// first block with stride 2. Its state_dict is the reference's, which has two things segmentation never runs:
/// the ImageNet classifier (conv_last, fc, bn, linear), and every stage a second time under x2, x4, x8, x16, x32,
/// the slices of "features" registered again (each a Sequential holding the slice, which keeps the indices of
/// "features": x8.0.2.*, x8.0.3.* for STDC1). Here those slices hold the same module objects, so both names
/// read and load the same tensors (parameters() lists each once, as PyTorch's does).
/// </summary>
internal sealed class StdcNet : nn.Module<Tensor, StdcFeatures>
{
    /// <summary>Base width: the stem ends with this many channels; the stages have 4×, 8× and 16× it.</summary>
    public const long BaseWidth = 64;

    /// <summary>Convolutions per CatBottleneck in both released backbones.</summary>
    public const int ConvsPerBlock = 4;

    private readonly Sequential features;
    private readonly StdcConvX conv_last;
    private readonly Linear fc;
    private readonly StdcClassifierNorm bn;
    private readonly Linear linear;
    private readonly Sequential x2;
    private readonly Sequential x4;
    private readonly Sequential x8;
    private readonly Sequential x16;
    private readonly Sequential x32;

    public StdcNet(StdcVariant variant) : base(nameof(StdcNet))
    {
        Variant = variant;
        var blocks = BlocksPerStage(variant);
        var layers = new List<nn.Module<Tensor, Tensor>>
        {
            new StdcConvX(3, BaseWidth / 2, 3, 2),
            new StdcConvX(BaseWidth / 2, BaseWidth, 3, 2),
        };
        // Where each of x2, x4, x8, x16, x32 ends in "features".
        var ends = new List<int> { 1, 2 };
        long width = BaseWidth;
        for (int stage = 0; stage < blocks.Count; stage++)
        {
            long outChannels = BaseWidth * 4 << stage;
            for (int j = 0; j < blocks[stage]; j++)
            {
                layers.Add(new StdcCatBottleneck(width, outChannels, j == 0 ? 2 : 1, ConvsPerBlock));
                width = outChannels;
            }
            ends.Add(layers.Count);
        }
        features = nn.Sequential(layers.Select((m, i) => (Index(i), m)).ToArray());
        long top = BaseWidth * 16;
        conv_last = new StdcConvX(top, Math.Max(1024, top), 1, 1);
        fc = nn.Linear(Math.Max(1024, top), Math.Max(1024, top), hasBias: false);
        bn = new StdcClassifierNorm(Math.Max(1024, top));
        linear = nn.Linear(Math.Max(1024, top), ImageNetClasses, hasBias: false);
        var slices = new Sequential[5];
        for (int s = 0; s < 5; s++)
        {
            int begin = s == 0 ? 0 : ends[s - 1];
            var slice = nn.Sequential(Enumerable.Range(begin, ends[s] - begin).Select(i => (Index(i), layers[i])).ToArray());
            slices[s] = nn.Sequential(("0", (nn.Module<Tensor, Tensor>)slice));
        }
        (x2, x4, x8, x16, x32) = (slices[0], slices[1], slices[2], slices[3], slices[4]);
        RegisterComponents();
        InitWeights();
    }

    /// <summary>The classifier's class count (ImageNet), which the reference's state_dict carries.</summary>
    public const long ImageNetClasses = 1000;

    public StdcVariant Variant { get; }

    /// <summary>CatBottlenecks per stage: STDC1 2, 2, 2; STDC2 4, 5, 3.</summary>
    public static IReadOnlyList<int> BlocksPerStage(StdcVariant variant) => variant switch
    {
        StdcVariant.Stdc1 => [2, 2, 2],
        StdcVariant.Stdc2 => [4, 5, 3],
        _ => throw new ArgumentOutOfRangeException(nameof(variant), variant, null),
    };

    /// <summary>The reference's name of the backbone.</summary>
    public static string ReferenceName(StdcVariant variant) => variant == StdcVariant.Stdc1 ? "STDCNet813" : "STDCNet1446";

    private static string Index(int i) => i.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The reference's initialisation: He-normal (fan-out) convolutions, linear layers N(0, 0.001²), BatchNorm 1 and 0.</summary>
    private void InitWeights()
    {
        using var _ = no_grad();
        foreach (var m in features.modules().Concat(conv_last.modules()))
        {
            if (m is Conv2d conv) nn.init.kaiming_normal_(conv.weight, 0, nn.init.FanInOut.FanOut, nn.init.NonlinearityType.ReLU);
        }
        nn.init.normal_(fc.weight, 0, 0.001);
        nn.init.normal_(linear.weight, 0, 0.001);
    }

    public override StdcFeatures forward(Tensor x)
    {
        Tensor? f2 = null, f4 = null, f8 = null, f16 = null;
        try
        {
            f2 = x2.Run(x);
            f4 = x4.Run(f2);
            f8 = x8.Run(f4);
            f16 = x16.Run(f8);
            return new StdcFeatures(f2, f4, f8, f16, x32.Run(f16));
        }
        catch
        {
            f2?.Dispose();
            f4?.Dispose();
            f8?.Dispose();
            f16?.Dispose();
            throw;
        }
    }
}

/// <summary>
/// The state of the backbone's ImageNet classifier BatchNorm1d (weight, bias, running_mean, running_var,
/// num_batches_tracked), which the reference saves and segmentation never runs: a holder of those tensors, not a
/// BatchNorm, so that nothing that walks the model's BatchNorms (folding, synchronised statistics) meets it.
/// </summary>
internal sealed class StdcClassifierNorm : nn.Module
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly Tensor running_mean;
    private readonly Tensor running_var;
    private readonly Tensor num_batches_tracked;

    public StdcClassifierNorm(long features) : base(nameof(StdcClassifierNorm))
    {
        weight = new Parameter(ones(features));
        bias = new Parameter(zeros(features));
        running_mean = zeros(features);
        running_var = ones(features);
        num_batches_tracked = tensor(0L);
        RegisterComponents();
    }
}
