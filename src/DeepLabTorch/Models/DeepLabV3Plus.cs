using DeepLabTorch.Models.Backbones;
using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DeepLabTorch.Models;

/// <summary>
/// DeepLabV3+ as a TorchSharp module: backbone → ASPP → decoder, logits upsampled bilinearly to the
/// input size. Parameter for parameter the reference PyTorch implementation (pytorch-deeplab-xception
/// layout): state_dict keys are "backbone.*", "aspp.*", "decoder.*" with the reference's names.
/// Build one with <c>new DeepLabV3Plus(new ModelConfig("mobilenet", 16, 21))</c> and use it like any
/// other <c>nn.Module&lt;Tensor, Tensor&gt;</c>. Weight files are ModelLoader's business, not this class's.
/// </summary>
public sealed class DeepLabV3Plus : SegmentationModel
{
    private readonly Backbone backbone;
    private readonly Aspp aspp;
    private readonly Decoder decoder;
    /// <summary>Builds the network for a backbone (<see cref="ModelCatalog.Names"/>), an output stride (8 or 16) and a class count, with fresh weights.</summary>
    /// <exception cref="UserException">The configuration names an unknown backbone or an unsupported output stride.</exception>
    public DeepLabV3Plus(ModelConfig config) : base(nameof(DeepLabV3Plus), config.Validate())
    {
        var entry = ModelCatalog.Get(config.Backbone);
        backbone = entry.Create(config.OutputStride);
        aspp = new Aspp(entry.HighLevelChannels, config.OutputStride);
        decoder = new Decoder(entry.LowLevelChannels, config.NumClasses, config.AlignCorners);
        RegisterComponents();
    }

    internal Backbone Backbone => backbone;
    internal Aspp Aspp => aspp;
    internal Decoder Decoder => decoder;

    /// <summary>state_dict prefix of the final 1×1 classifier, whose shape depends on NumClasses.</summary>
    public string ClassifierPrefix => $"decoder.last_conv.{Decoder.ClassifierIndex}";

    /// <inheritdoc/>
    public override IReadOnlyList<string> ClassifierPrefixes => new[] { ClassifierPrefix };

    /// <inheritdoc/>
    public override string Description => $"DeepLabV3+ ({Config.Backbone}, output stride {Config.OutputStride}, {Config.NumClasses} classes)";

    /// <summary>Backbone parameters (trained at the base learning rate), in state_dict order.</summary>
    public IEnumerable<Parameter> BackboneParameters() => backbone.parameters().Where(p => p.requires_grad);

    /// <summary>ASPP and decoder parameters (trained at 10× the base learning rate), in state_dict order.</summary>
    public IEnumerable<Parameter> HeadParameters() => aspp.parameters().Concat(decoder.parameters()).Where(p => p.requires_grad);

    /// <summary>The reference's two optimizer groups: the backbone at 1× and ASPP + decoder at 10× the base learning rate.</summary>
    public override IReadOnlyList<(IReadOnlyList<Parameter> Parameters, double LearningRateMultiplier)> ParameterGroups() => new[]
    {
        ((IReadOnlyList<Parameter>)BackboneParameters().ToList(), 1.0),
        (HeadParameters().ToList(), Architecture.HeadLearningRateMultiplier),
    };

    /// <summary>Logits [N,C,H,W] at the input's size for normalised images [N,3,H,W].</summary>
    public override Tensor forward(Tensor input)
    {
        Layers.CheckImageBatch(input, 3, nameof(DeepLabV3Plus));
        var s = input.shape;
        CheckTrainingBatch(input, "the ASPP image-pooling branch");
        using var features = backbone.forward(input);
        using var context = aspp.forward(features.Output);
        using var logits = decoder.forward(context, features.LowLevel);
        // A bfloat16 model in eval mode upsamples its logits in float32, as PyTorch's CPU autocast runs
        // upsample_bilinear2d: every output is made from float32 logits anyway, and with the native heap kept
        // the cast and the float32 upsampling beat bfloat16's at 513² (batch 1 71 against 74 ms, batch 8 533
        // against 543 ms, 3 interleaved pairs; docs/performance.md). Training keeps the compute type
        // (MixedPrecision.Logits casts after the upsampling, as its gradient tests expect).
        if (!training && logits.dtype == ScalarType.BFloat16)
        {
            using var wide = logits.to(ScalarType.Float32);
            return F.interpolate(wide, new[] { s[2], s[3] }, mode: InterpolationMode.Bilinear, align_corners: Config.AlignCorners);
        }
        return F.interpolate(logits, new[] { s[2], s[3] }, mode: InterpolationMode.Bilinear, align_corners: Config.AlignCorners);
    }
}
