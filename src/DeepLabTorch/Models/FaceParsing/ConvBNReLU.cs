using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Models.FaceParsing;

/// <summary>
/// Convolution without bias, BatchNorm, ReLU: BiSeNet's basic unit. State names: conv, bn.
/// </summary>
internal sealed class ConvBNReLU : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv;
    private readonly BatchNorm2d bn;

    public ConvBNReLU(long inChannels, long outChannels, long kernel = 3, long stride = 1, long padding = 1) : base(nameof(ConvBNReLU))
    {
        conv = Layers.Conv(inChannels, outChannels, kernel, stride, padding);
        bn = new BatchNorm2d(outChannels);
        RegisterComponents();
        BiSeNetInit.Conv(conv);
    }

    public override Tensor forward(Tensor x) => conv.Run(x).Then(bn.forward).relu_();
}

/// <summary>The initialisation of BiSeNet's own convolutions (everything but the ResNet-18).</summary>
internal static class BiSeNetInit
{
    /// <summary>
    /// He-normal over the fan-in with negative slope 1, that is a gain of 1: standard deviation 1/sqrt(fan_in).
    /// </summary>
    public static void Conv(Conv2d conv) =>
        nn.init.kaiming_normal_(conv.weight, 1.0, nn.init.FanInOut.FanIn, nn.init.NonlinearityType.LeakyReLU);
}
