using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DeepLabTorch.Models.FaceParsing;

/// <summary>
/// The BatchNorms of STDC-Seg's heads: the reference's activated BatchNorm (with no activation of its own) keeps
/// weight, bias and running statistics but no step counter, so its state_dict has no num_batches_tracked. Same
/// numerics as BatchNorm2d, momentum 0.1, eps 1e-5.
/// </summary>
internal static class StdcHeadNorm
{
    public static BatchNorm2d Create(long channels)
    {
        var bn = new BatchNorm2d(channels);
        bn.num_batches_tracked = null;
        return bn;
    }

    /// <summary>
    /// The reference heads' initialisation of a convolution: He-normal over the fan-in with a leaky-ReLU slope of 1
    /// (a gain of 1, so std = 1/√fan_in).
    /// </summary>
    public static void InitConv(Conv2d conv)
    {
        using var _ = no_grad();
        nn.init.kaiming_normal_(conv.weight, 1, nn.init.FanInOut.FanIn, nn.init.NonlinearityType.LeakyReLU);
    }

    /// <summary>[N,C,H,W] → [N,C,1,1]: the mean over the whole map, as an average pool with the map's size.</summary>
    public static Tensor GlobalAverage(Tensor x) => F.avg_pool2d(x, [x.shape[2], x.shape[3]]);
}

/// <summary>Convolution (bias-free, padding kernel/2), head BatchNorm, ReLU ("ConvBNReLU"). Keys: conv.weight, bn.*.</summary>
internal sealed class StdcConvBnRelu : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv;
    private readonly BatchNorm2d bn;

    public StdcConvBnRelu(long inChannels, long outChannels, long kernel = 3) : base(nameof(StdcConvBnRelu))
    {
        conv = Layers.Conv(inChannels, outChannels, kernel, padding: kernel / 2);
        bn = StdcHeadNorm.Create(outChannels);
        RegisterComponents();
        StdcHeadNorm.InitConv(conv);
    }

    public override Tensor forward(Tensor x) => conv.Run(x).Then(bn.forward).relu_();
}

/// <summary>
/// Attention refinement: a 3×3 ConvBNReLU, then the features times sigmoid(BN(1×1 conv(global average))).
/// Keys: conv.*, conv_atten.weight, bn_atten.*.
/// </summary>
internal sealed class StdcAttentionRefinement : nn.Module<Tensor, Tensor>
{
    private readonly StdcConvBnRelu conv;
    private readonly Conv2d conv_atten;
    private readonly BatchNorm2d bn_atten;

    public StdcAttentionRefinement(long inChannels, long outChannels) : base(nameof(StdcAttentionRefinement))
    {
        conv = new StdcConvBnRelu(inChannels, outChannels, 3);
        conv_atten = Layers.Conv(outChannels, outChannels, 1);
        bn_atten = StdcHeadNorm.Create(outChannels);
        RegisterComponents();
        StdcHeadNorm.InitConv(conv_atten);
    }

    public override Tensor forward(Tensor x)
    {
        using var feat = conv.forward(x);
        using var pooled = StdcHeadNorm.GlobalAverage(feat);
        using var attention = conv_atten.Run(pooled).Then(bn_atten.forward).Then(t => t.sigmoid());
        return feat.mul(attention);
    }
}

/// <summary>
/// What the context path hands on: the backbone's features, and the refined context at 1/8 ("feat_cp8", from the
/// 1/16 branch) and 1/16 ("feat_cp16", from the 1/32 branch), 128 channels each. Dispose frees all.
/// </summary>
internal sealed record StdcContext(StdcFeatures Backbone, Tensor Context8, Tensor Context16) : IDisposable
{
    public void Dispose()
    {
        Backbone.Dispose();
        Context8.Dispose();
        Context16.Dispose();
    }
}

/// <summary>
/// STDC-Seg's context path: the backbone; the 1/32 features' global average through a 1×1 ConvBNReLU (1024→128),
/// added (the reference's nearest upsampling of a 1×1 map: a broadcast) to the attention-refined 1/32 features;
/// that sum nearest-upsampled to the 1/16 size and through a 3×3 ConvBNReLU (conv_head32) gives the 1/16 context;
/// added to the refined 1/16 features, nearest-upsampled to the 1/8 size and through conv_head16, the 1/8 context.
/// Keys: backbone.*, arm16.*, arm32.*, conv_head32.*, conv_head16.*, conv_avg.*.
/// </summary>
internal sealed class StdcContextPath : nn.Module<Tensor, StdcContext>
{
    /// <summary>Width of the context path.</summary>
    public const long Channels = 128;

    private readonly StdcNet backbone;
    private readonly StdcAttentionRefinement arm16;
    private readonly StdcAttentionRefinement arm32;
    private readonly StdcConvBnRelu conv_head32;
    private readonly StdcConvBnRelu conv_head16;
    private readonly StdcConvBnRelu conv_avg;

    public StdcContextPath(StdcVariant variant) : base(nameof(StdcContextPath))
    {
        backbone = new StdcNet(variant);
        arm16 = new StdcAttentionRefinement(StdcNet.BaseWidth * 8, Channels);
        arm32 = new StdcAttentionRefinement(StdcNet.BaseWidth * 16, Channels);
        conv_head32 = new StdcConvBnRelu(Channels, Channels, 3);
        conv_head16 = new StdcConvBnRelu(Channels, Channels, 3);
        conv_avg = new StdcConvBnRelu(StdcNet.BaseWidth * 16, Channels, 1);
        RegisterComponents();
    }

    public StdcNet Backbone => backbone;

    public override StdcContext forward(Tensor x)
    {
        var feats = backbone.forward(x);
        Tensor? context16 = null;
        try
        {
            var size16 = new[] { feats.F16.shape[2], feats.F16.shape[3] };
            var size8 = new[] { feats.F8.shape[2], feats.F8.shape[3] };
            using (var pooled = StdcHeadNorm.GlobalAverage(feats.F32))
            using (var global = conv_avg.forward(pooled))
            using (var refined32 = arm32.forward(feats.F32))
            using (var sum32 = refined32.Plus(global))
            using (var up32 = F.interpolate(sum32, size16, mode: InterpolationMode.Nearest))
                context16 = conv_head32.forward(up32);
            Tensor context8;
            using (var refined16 = arm16.forward(feats.F16))
            using (var sum16 = refined16.Plus(context16))
            using (var up16 = F.interpolate(sum16, size8, mode: InterpolationMode.Nearest))
                context8 = conv_head16.forward(up16);
            return new StdcContext(feats, context8, context16);
        }
        catch
        {
            context16?.Dispose();
            feats.Dispose();
            throw;
        }
    }
}

/// <summary>
/// Feature fusion of the 1/8 backbone features and the 1/8 context: concatenated, a 1×1 ConvBNReLU, then
/// f + f·sigmoid(conv2(relu(conv1(global average of f)))) with a 4× channel squeeze. Keys: convblk.*, conv1.weight, conv2.weight.
/// </summary>
internal sealed class StdcFeatureFusion : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly StdcConvBnRelu convblk;
    private readonly Conv2d conv1;
    private readonly Conv2d conv2;

    public StdcFeatureFusion(long inChannels, long outChannels) : base(nameof(StdcFeatureFusion))
    {
        convblk = new StdcConvBnRelu(inChannels, outChannels, 1);
        conv1 = Layers.Conv(outChannels, outChannels / 4, 1);
        conv2 = Layers.Conv(outChannels / 4, outChannels, 1);
        RegisterComponents();
        StdcHeadNorm.InitConv(conv1);
        StdcHeadNorm.InitConv(conv2);
    }

    public override Tensor forward(Tensor spatial, Tensor context)
    {
        Tensor feat;
        using (var joined = cat(new[] { spatial, context }, 1)) feat = convblk.forward(joined);
        using (feat)
        {
            using var pooled = StdcHeadNorm.GlobalAverage(feat);
            using var attention = conv1.Run(pooled).relu_().Then(conv2.Run).Then(t => t.sigmoid());
            using var weighted = feat.mul(attention);
            return weighted.Plus(feat);
        }
    }
}

/// <summary>An output head ("BiSeNetOutput"): 3×3 ConvBNReLU to a middle width, then a bias-free 1×1 convolution. Keys: conv.*, conv_out.weight.</summary>
internal sealed class StdcOutputHead : nn.Module<Tensor, Tensor>
{
    private readonly StdcConvBnRelu conv;
    private readonly Conv2d conv_out;

    public StdcOutputHead(long inChannels, long midChannels, long outChannels) : base(nameof(StdcOutputHead))
    {
        conv = new StdcConvBnRelu(inChannels, midChannels, 3);
        conv_out = Layers.Conv(midChannels, outChannels, 1);
        RegisterComponents();
        StdcHeadNorm.InitConv(conv_out);
    }

    public override Tensor forward(Tensor x) => conv.forward(x).Then(conv_out.Run);
}

/// <summary>
/// Which detail heads ForwardAll returns (all four always exist in the state_dict). The reference's training
/// configurations: Sp8 (its released scripts), Sp4 | Sp8, Sp2 | Sp4 | Sp8, or None; it never returns sp16.
/// </summary>
[Flags]
internal enum StdcDetailHeads
{
    None = 0,
    Sp2 = 1,
    Sp4 = 2,
    Sp8 = 4,
}

/// <summary>
/// STDC-Seg (STDC1-Seg, STDC2-Seg) as a TorchSharp module, key for key the reference's BiSeNet(backbone,
/// n_classes) with use_conv_last off: cp (the context path with the STDC backbone), ffm (fusion of the 1/8
/// backbone features, 256 channels, with the 1/8 context, 128), conv_out (256→256→classes), conv_out16 and
/// conv_out32 (auxiliary, 128→64→classes on the 1/8 and 1/16 contexts), and the one-channel detail heads
/// conv_out_sp16, conv_out_sp8, conv_out_sp4, conv_out_sp2 (on the backbone's 1/16, 1/8, 1/4, 1/2 features,
/// 64 wide). Main and auxiliary logits are upsampled bilinearly (align_corners) to the input size; detail
/// logits stay at their head's resolution. Any input size works (the sizes follow each stride-2 layer: ⌈H/2⌉).
/// forward returns the main logits; ForwardAll adds [out16, out32] and the configured detail heads.
/// </summary>
internal sealed class StdcSeg : SegmentationModel
{
    private readonly StdcContextPath cp;
    private readonly StdcFeatureFusion ffm;
    private readonly StdcOutputHead conv_out;
    private readonly StdcOutputHead conv_out16;
    private readonly StdcOutputHead conv_out32;
    private readonly StdcOutputHead conv_out_sp16;
    private readonly StdcOutputHead conv_out_sp8;
    private readonly StdcOutputHead conv_out_sp4;
    private readonly StdcOutputHead conv_out_sp2;

    /// <summary>Width of the fused features and of the main head.</summary>
    public const long FusedChannels = 256;

    /// <summary>Middle width of the auxiliary and detail heads.</summary>
    public const long HeadChannels = 64;

    /// <summary>The catalogue name of a variant: stdc1 or stdc2.</summary>
    public static string CatalogueName(StdcVariant variant) => variant == StdcVariant.Stdc1 ? "stdc1" : "stdc2";

    public StdcSeg(StdcVariant variant, int numClasses, StdcDetailHeads detailHeads = StdcDetailHeads.Sp8)
        : base(nameof(StdcSeg), new ModelConfig(CatalogueName(variant), 16, numClasses))
    {
        if (numClasses < 1) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "at least one class");
        if (detailHeads is not (StdcDetailHeads.None or StdcDetailHeads.Sp8 or (StdcDetailHeads.Sp4 | StdcDetailHeads.Sp8)
            or (StdcDetailHeads.Sp2 | StdcDetailHeads.Sp4 | StdcDetailHeads.Sp8)))
            throw new ArgumentException($"STDC-Seg returns the detail heads sp8, sp4+sp8, sp2+sp4+sp8 or none, not {detailHeads}", nameof(detailHeads));
        Variant = variant;
        NumClasses = numClasses;
        DetailHeads = detailHeads;
        long c = StdcContextPath.Channels;
        long w = StdcNet.BaseWidth;
        cp = new StdcContextPath(variant);
        ffm = new StdcFeatureFusion(w * 4 + c, FusedChannels);
        conv_out = new StdcOutputHead(FusedChannels, FusedChannels, numClasses);
        conv_out16 = new StdcOutputHead(c, HeadChannels, numClasses);
        conv_out32 = new StdcOutputHead(c, HeadChannels, numClasses);
        conv_out_sp16 = new StdcOutputHead(w * 8, HeadChannels, 1);
        conv_out_sp8 = new StdcOutputHead(w * 4, HeadChannels, 1);
        conv_out_sp4 = new StdcOutputHead(w, HeadChannels, 1);
        conv_out_sp2 = new StdcOutputHead(w / 2, HeadChannels, 1);
        RegisterComponents();
    }

    public StdcVariant Variant { get; }

    /// <summary>state_dict prefixes of the three classifiers, whose shapes depend on NumClasses (the detail heads have one channel).</summary>
    public override IReadOnlyList<string> ClassifierPrefixes { get; } = new[] { "conv_out.conv_out", "conv_out16.conv_out", "conv_out32.conv_out" };

    public override string Description => $"STDC{(Variant == StdcVariant.Stdc1 ? 1 : 2)}-Seg ({NumClasses} classes)";

    /// <summary>The reference's groups: the context path (backbone included) at the base learning rate, the fusion module and every head at 10×.</summary>
    public override IReadOnlyList<(IReadOnlyList<Parameter> Parameters, double LearningRateMultiplier)> ParameterGroups() => new[]
    {
        ((IReadOnlyList<Parameter>)cp.parameters().Where(p => p.requires_grad).ToList(), 1.0),
        (new nn.Module[] { ffm, conv_out, conv_out16, conv_out32, conv_out_sp16, conv_out_sp8, conv_out_sp4, conv_out_sp2 }
            .SelectMany(m => m.parameters()).Where(p => p.requires_grad).ToList(), Architecture.HeadLearningRateMultiplier),
    };
    public int NumClasses { get; }
    public StdcDetailHeads DetailHeads { get; }

    /// <summary>The context path (and through it the backbone).</summary>
    public StdcContextPath ContextPath => cp;

    public override Tensor forward(Tensor input)
    {
        CheckInput(input);
        using var context = cp.forward(input);
        return Main(context, input);
    }

    /// <summary>Main logits, [out16, out32] and the configured detail logits (sp2, sp4, sp8 order, as the reference returns them).</summary>
    internal override bool HasTrainingOutputs => true;

    internal override ParsingOutputs ForwardAll(Tensor input)
    {
        CheckInput(input);
        var made = new List<Tensor>();
        try
        {
            using var context = cp.forward(input);
            var main = Keep(made, Main(context, input));
            var aux16 = Keep(made, Upsampled(conv_out16, context.Context8, input));
            var aux32 = Keep(made, Upsampled(conv_out32, context.Context16, input));
            var detail = new List<Tensor>();
            if (DetailHeads.HasFlag(StdcDetailHeads.Sp2)) detail.Add(Keep(made, conv_out_sp2.forward(context.Backbone.F2)));
            if (DetailHeads.HasFlag(StdcDetailHeads.Sp4)) detail.Add(Keep(made, conv_out_sp4.forward(context.Backbone.F4)));
            if (DetailHeads.HasFlag(StdcDetailHeads.Sp8)) detail.Add(Keep(made, conv_out_sp8.forward(context.Backbone.F8)));
            return new ParsingOutputs(main, [aux16, aux32], detail);
        }
        catch
        {
            foreach (var t in made) t.Dispose();
            throw;
        }
    }

    private static Tensor Keep(List<Tensor> made, Tensor t)
    {
        made.Add(t);
        return t;
    }

    private Tensor Main(StdcContext context, Tensor input)
    {
        using var fused = ffm.forward(context.Backbone.F8, context.Context8);
        return Upsampled(conv_out, fused, input);
    }

    private static Tensor Upsampled(StdcOutputHead head, Tensor x, Tensor input)
    {
        using var logits = head.forward(x);
        return F.interpolate(logits, [input.shape[2], input.shape[3]], mode: InterpolationMode.Bilinear, align_corners: true);
    }

    private void CheckInput(Tensor input)
    {
        Layers.CheckImageBatch(input, 3, nameof(StdcSeg));
        CheckTrainingBatch(input, "the global-context and attention branches");
    }
}
