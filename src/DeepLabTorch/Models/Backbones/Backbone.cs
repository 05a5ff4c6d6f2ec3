using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Models.Backbones;

/// <summary>
/// The two feature maps a DeepLabV3+ backbone hands to the head. Disposing releases both handles
/// (autograd keeps what it needs on its own).
/// </summary>
public sealed class BackboneFeatures : IDisposable
{
    public BackboneFeatures(Tensor output, Tensor lowLevel) { Output = output; LowLevel = lowLevel; }

    /// <summary>High-level features at the output stride.</summary>
    public Tensor Output { get; }
    /// <summary>Low-level features at stride 4, for the decoder.</summary>
    public Tensor LowLevel { get; }

    public void Dispose()
    {
        Output.Dispose();
        LowLevel.Dispose();
    }
}

/// <summary>A feature extractor: image batch [N,3,H,W] → (high-level, low-level) features.</summary>
public abstract class Backbone : nn.Module<Tensor, BackboneFeatures>
{
    protected Backbone(string name, int outputStride) : base(name)
    {
        if (!Architecture.OutputStrides.Contains(outputStride))
            throw new UserException($"unsupported output stride {outputStride}: expected 8 or 16");
        OutputStride = outputStride;
    }

    public int OutputStride { get; }
    public abstract int LowLevelChannels { get; }
    public abstract int OutputChannels { get; }
}
