using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DeepLabTorch.Models;

/// <summary>Small helpers shared by the model modules.</summary>
internal static class Layers
{
    /// <summary>
    /// The reference's "fixed padding": pad (begin, end) so that a kernel of this size and dilation,
    /// applied without padding, keeps features aligned whatever the input size.
    /// </summary>
    public static (long Begin, long End) FixedPadding(long kernel, long dilation)
    {
        long effective = kernel + (kernel - 1) * (dilation - 1);
        long total = effective - 1;
        long begin = total / 2;
        return (begin, total - begin);
    }

    /// <summary>Zero-pads H and W as FixedPadding says (a copy; use conv padding instead where equivalent).</summary>
    public static Tensor PadFixed(Tensor x, long kernel, long dilation)
    {
        var (b, e) = FixedPadding(kernel, dilation);
        return F.pad(x, new[] { b, e, b, e });
    }

    /// <summary>Applies f to x and frees x's handle (for chains of intermediates).</summary>
    public static Tensor Then(this Tensor x, Func<Tensor, Tensor> f)
    {
        using (x) return f(x);
    }

    /// <summary>Convolution without bias, as every conv of the backbones and the head.</summary>
    public static Conv2d Conv(long inChannels, long outChannels, long kernel, long stride = 1, long padding = 0, long dilation = 1, long groups = 1) =>
        nn.Conv2d(inChannels, outChannels, kernel, stride, padding, dilation, groups: groups, bias: false);

    /// <summary>
    /// He-normal initialisation of every convolution under a module and BatchNorm weight 1, bias 0.
    /// The reference uses fan-in for MobileNetV2, ASPP and decoder, fan-out for Xception and ResNet.
    /// </summary>
    public static void InitWeights(nn.Module module, nn.init.FanInOut mode)
    {
        foreach (var m in module.modules())
        {
            switch (m)
            {
                case Conv2d conv:
                    nn.init.kaiming_normal_(conv.weight, 0, mode, nn.init.NonlinearityType.ReLU);
                    break;
                case TorchSharp.Modules.BatchNorm bn:
                    if (bn.weight is not null) nn.init.ones_(bn.weight);
                    if (bn.bias is not null) nn.init.zeros_(bn.bias);
                    break;
            }
        }
    }

    /// <summary>Checks a model input: a 4-D float batch with the given channel count.</summary>
    public static void CheckImageBatch(Tensor x, long channels, string who)
    {
        var s = x.shape;
        if (s.Length != 4)
            throw new ArgumentException($"{who} expects a 4-D [N,{channels},H,W] batch, got shape [{string.Join(", ", s)}]");
        if (s[1] != channels)
            throw new ArgumentException($"{who} expects {channels} input channels, got shape [{string.Join(", ", s)}]");
        if (!x.dtype.IsFloatingPoint())
            throw new ArgumentException($"{who} expects a floating-point batch, got {x.dtype}");
    }
}
