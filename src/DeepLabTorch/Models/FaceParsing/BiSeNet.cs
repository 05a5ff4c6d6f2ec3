using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DeepLabTorch.Models.FaceParsing;

/// <summary>
/// BiSeNet for face parsing, state_dict key for key the face-parsing network of zllrunning/face-parsing.PyTorch
/// (its released 79999_iter.pth, 19 classes, loads as it is). The context path runs ResNet-18; its stride-8
/// features serve as the spatial path. The feature fusion module joins them with the stride-8 context (256
/// channels) and conv_out classifies the result; conv_out16 and conv_out32 are the auxiliary heads on the
/// stride-8 and stride-16 context (named after the reference). Every output is upsampled bilinearly with aligned
/// corners to the input size. State names: cp, ffm, conv_out, conv_out16, conv_out32.
/// </summary>
internal sealed class BiSeNet : SegmentationModel
{
    private readonly ContextPath cp;
    private readonly FeatureFusionModule ffm;
    private readonly BiSeNetOutput conv_out;
    private readonly BiSeNetOutput conv_out16;
    private readonly BiSeNetOutput conv_out32;

    /// <summary>The catalogue name.</summary>
    public const string CatalogueName = "bisenet";

    public BiSeNet(int numClasses) : base(nameof(BiSeNet), new ModelConfig(CatalogueName, 16, numClasses))
    {
        if (numClasses < 1) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "BiSeNet needs at least one class");
        NumClasses = numClasses;
        cp = new ContextPath();
        ffm = new FeatureFusionModule(256, 256);
        conv_out = new BiSeNetOutput(256, 256, numClasses);
        conv_out16 = new BiSeNetOutput(128, 64, numClasses);
        conv_out32 = new BiSeNetOutput(128, 64, numClasses);
        RegisterComponents();
    }

    public int NumClasses { get; }

    /// <summary>state_dict prefixes of the three classifiers, whose shapes depend on NumClasses.</summary>
    public override IReadOnlyList<string> ClassifierPrefixes { get; } = new[] { "conv_out.conv_out", "conv_out16.conv_out", "conv_out32.conv_out" };

    public override string Description => $"BiSeNet (ResNet-18, {NumClasses} classes)";

    /// <summary>The reference's groups: the context path at the base learning rate, the fusion module and the heads at 10×.</summary>
    public override IReadOnlyList<(IReadOnlyList<Parameter> Parameters, double LearningRateMultiplier)> ParameterGroups() => new[]
    {
        ((IReadOnlyList<Parameter>)cp.parameters().Where(p => p.requires_grad).ToList(), 1.0),
        (ffm.parameters().Concat(conv_out.parameters()).Concat(conv_out16.parameters()).Concat(conv_out32.parameters())
            .Where(p => p.requires_grad).ToList(), Architecture.HeadLearningRateMultiplier),
    };

    /// <summary>The main logits [N, classes, H, W] at the input size.</summary>
    public override Tensor forward(Tensor input)
    {
        Check(input);
        using var scope = NewDisposeScope();
        var (feat8, context8, _) = cp.forward(input);
        var logits = conv_out.forward(ffm.forward(feat8, context8));
        return ToInputSize(logits, input).MoveToOuterDisposeScope();
    }

    /// <summary>The main logits and the auxiliary heads' (conv_out16, then conv_out32), all at the input size; no detail outputs.</summary>
    internal override bool HasTrainingOutputs => true;

    internal override ParsingOutputs ForwardAll(Tensor input)
    {
        Check(input);
        using var scope = NewDisposeScope();
        var (feat8, context8, context16) = cp.forward(input);
        var main = ToInputSize(conv_out.forward(ffm.forward(feat8, context8)), input);
        var aux16 = ToInputSize(conv_out16.forward(context8), input);
        var aux32 = ToInputSize(conv_out32.forward(context16), input);
        return new ParsingOutputs(main.MoveToOuterDisposeScope(),
            new[] { aux16.MoveToOuterDisposeScope(), aux32.MoveToOuterDisposeScope() }, Array.Empty<Tensor>());
    }

    private static Tensor ToInputSize(Tensor logits, Tensor input) =>
        F.interpolate(logits, new[] { input.shape[2], input.shape[3] }, mode: InterpolationMode.Bilinear, align_corners: true);

    private void Check(Tensor input)
    {
        Layers.CheckImageBatch(input, 3, nameof(BiSeNet));
        // libtorch normalises a single value per channel without complaint (PyTorch's Python layer refuses it),
        // which would make the global-context BatchNorms output their bias alone.
        CheckTrainingBatch(input, "the global context and of the attention branches");
    }
}
