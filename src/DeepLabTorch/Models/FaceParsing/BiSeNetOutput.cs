using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Models.FaceParsing;

/// <summary>
/// A BiSeNet head: a 3×3 ConvBNReLU to the middle width, then a 1×1 classifier without bias, at the features'
/// resolution. State names: conv.{conv,bn}, conv_out.
/// </summary>
internal sealed class BiSeNetOutput : nn.Module<Tensor, Tensor>
{
    private readonly ConvBNReLU conv;
    private readonly Conv2d conv_out;

    public BiSeNetOutput(long inChannels, long midChannels, long numClasses) : base(nameof(BiSeNetOutput))
    {
        conv = new ConvBNReLU(inChannels, midChannels, 3, 1, 1);
        conv_out = Layers.Conv(midChannels, numClasses, 1);
        RegisterComponents();
        BiSeNetInit.Conv(conv_out);
    }

    /// <summary>The 1×1 classifier (weight [classes, mid, 1, 1]).</summary>
    public Conv2d Classifier => conv_out;

    public override Tensor forward(Tensor x) => conv.forward(x).Then(conv_out.Run);
}
