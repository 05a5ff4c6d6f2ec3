using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DeepLabTorch.Models.FaceParsing;

/// <summary>
/// BiSeNet's context path on ResNet-18. The global average of the stride-32 features (1×1 ConvBNReLU to 128) is
/// added to their attention refinement (arm32); the sum is upsampled (nearest) to the stride-16 size and refined
/// by conv_head32; that is added to the refined stride-16 features (arm16), upsampled (nearest) to the stride-8
/// size and refined by conv_head16. Each upsampling goes to the next feature map's own size, so inputs of any size
/// work. State names: resnet, arm16, arm32, conv_head32, conv_head16, conv_avg (registration order).
/// </summary>
internal sealed class ContextPath : nn.Module
{
    private readonly ResNet18 resnet;
    private readonly AttentionRefinementModule arm16;
    private readonly AttentionRefinementModule arm32;
    private readonly ConvBNReLU conv_head32;
    private readonly ConvBNReLU conv_head16;
    private readonly ConvBNReLU conv_avg;

    public ContextPath() : base(nameof(ContextPath))
    {
        resnet = new ResNet18();
        arm16 = new AttentionRefinementModule(256, 128);
        arm32 = new AttentionRefinementModule(512, 128);
        conv_head32 = new ConvBNReLU(128, 128, 3, 1, 1);
        conv_head16 = new ConvBNReLU(128, 128, 3, 1, 1);
        conv_avg = new ConvBNReLU(512, 128, 1, 1, 0);
        RegisterComponents();
    }

    /// <summary>
    /// The backbone's stride-8 features (128 channels, BiSeNet's spatial path), the context at stride 8 (conv_head16's
    /// output) and at stride 16 (conv_head32's output), 128 channels each; the caller disposes them.
    /// </summary>
    public (Tensor Feat8, Tensor Context8, Tensor Context16) forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var (feat8, feat16, feat32) = resnet.forward(input);
        // The 1×1 global context, upsampled (nearest) to the stride-32 size: a broadcast in the sum.
        var global = conv_avg.forward(feat32.mean(new long[] { 2, 3 }, keepdim: true));
        var sum32 = arm32.forward(feat32).Plus(global);
        var context16 = conv_head32.forward(Nearest(sum32, feat16));
        var sum16 = arm16.forward(feat16).Plus(context16);
        var context8 = conv_head16.forward(Nearest(sum16, feat8));
        return (feat8.MoveToOuterDisposeScope(), context8.MoveToOuterDisposeScope(), context16.MoveToOuterDisposeScope());
    }

    /// <summary>x upsampled by nearest neighbour to the height and width of like.</summary>
    private static Tensor Nearest(Tensor x, Tensor like) =>
        F.interpolate(x, new[] { like.shape[2], like.shape[3] }, mode: InterpolationMode.Nearest);
}
