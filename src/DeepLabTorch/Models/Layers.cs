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

    /// <summary>
    /// Runs a module of the network on x. A convolution whose weights are float32 while x is bfloat16
    /// (mixed-precision training, <c>train --precision bf16</c>) convolves with a bfloat16 copy of its
    /// weights made here, inside the autograd graph, so the float32 master weights get float32 gradients;
    /// any other convolution, and every other module, runs as its own forward does. A Sequential is
    /// walked child by child so that the rule reaches the convolutions inside it.
    /// </summary>
    public static Tensor Run(this nn.Module<Tensor, Tensor> module, Tensor x)
    {
        switch (module)
        {
            case Conv2d conv:
                return RunConv(conv, x);
            case Sequential seq when seq.Count > 0:
            {
                var current = ((nn.Module<Tensor, Tensor>)seq[0]).Run(x);
                for (int i = 1; i < seq.Count; i++)
                {
                    var next = ((nn.Module<Tensor, Tensor>)seq[i]).Run(current);
                    current.Dispose();
                    current = next;
                }
                return current;
            }
            default:
                return module.call(x);
        }
    }

    private static Tensor RunConv(Conv2d conv, Tensor x)
    {
        var w = conv.weight;
        if (w.dtype == x.dtype || !IsMixed(w.dtype, x.dtype)) return conv.call(x);
        using var wc = w.to(x.dtype);
        using var bc = conv.bias?.to(x.dtype);
        return F.conv2d(x, wc, bc, conv.stride, conv.padding ?? [0, 0], conv.dilation, conv.groups);
    }

    /// <summary>Float32 master weights with a 16-bit compute type.</summary>
    private static bool IsMixed(ScalarType weights, ScalarType compute) =>
        weights == ScalarType.Float32 && compute is ScalarType.BFloat16 or ScalarType.Float16;

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
