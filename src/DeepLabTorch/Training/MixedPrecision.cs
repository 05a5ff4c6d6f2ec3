using DeepLabTorch.Extensions;
using DeepLabTorch.Models;
using static TorchSharp.torch;

namespace DeepLabTorch.Training;

/// <summary>
/// Mixed-precision training (<c>train --precision bf16</c>), built by hand because TorchSharp has no autocast:
/// <list type="bullet">
/// <item>the model keeps float32 master weights, which SGD updates and checkpoints save;</item>
/// <item>the batch goes in as bfloat16 (channels-last on the CPU when asked), and every convolution then
/// convolves with a bfloat16 copy of its float32 weights made inside the graph (Layers.Run), so the
/// gradients flow back through the cast and land on the masters as float32;</item>
/// <item>BatchNorm keeps float32 weights and running statistics: libtorch's batch_norm takes a bfloat16
/// input with float32 parameters and accumulates its statistics in float32;</item>
/// <item>the logits go back to float32 before the loss, which is computed in float32.</item>
/// </list>
/// With float32 (the default) both steps hand the tensors through unchanged.
/// </summary>
internal sealed class MixedPrecision
{
    private MixedPrecision(Precision precision, bool channelsLast)
    {
        Precision = precision;
        ChannelsLast = channelsLast;
    }

    public static MixedPrecision Float32 { get; } = new(Precision.Float32, false);

    /// <summary>bfloat16 compute over float32 masters; channelsLast also stores the masters and the input NHWC.</summary>
    public static MixedPrecision BFloat16(bool channelsLast) => new(Precision.BFloat16, channelsLast);

    public static MixedPrecision For(Precision precision, bool channelsLast) =>
        precision == Precision.BFloat16 ? BFloat16(channelsLast) : channelsLast ? new(Precision.Float32, true) : Float32;

    public Precision Precision { get; }
    public bool ChannelsLast { get; }
    public ScalarType ComputeType => Precision == Precision.BFloat16 ? ScalarType.BFloat16 : ScalarType.Float32;

    public string Name => (Precision == Precision.BFloat16 ? "bf16 (float32 master weights)" : "float32") + (ChannelsLast ? ", channels-last" : "");

    /// <summary>
    /// Call once on a float32 model before its optimizer is built: channels-last replaces the convolutions'
    /// Parameter objects. The weights stay float32 either way.
    /// </summary>
    public void Prepare(nn.Module model)
    {
        if (ChannelsLast) model.ToChannelsLast();
    }

    /// <summary>The batch as the network takes it: in the compute type, NHWC when channels-last. A new handle.</summary>
    public Tensor Input(Tensor images)
    {
        if (images.dtype == ComputeType && (!ChannelsLast || images.IsChannelsLast())) return images.alias();
        using var cast = images.to(ComputeType);
        return ChannelsLast ? cast.ContiguousChannelsLast() : cast.alias();
    }

    /// <summary>The network's output as the loss takes it: float32. A new handle.</summary>
    public static Tensor Logits(Tensor output) => output.dtype == ScalarType.Float32 ? output.alias() : output.to(ScalarType.Float32);
}
