using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Models.Backbones;

/// <summary>
/// The two feature maps a DeepLabV3+ backbone hands to the head. Disposing releases both handles
/// (autograd keeps what it needs on its own).
/// </summary>
internal sealed class BackboneFeatures : IDisposable
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
internal abstract class Backbone : nn.Module<Tensor, BackboneFeatures>
{
    protected Backbone(string name, BackboneDescriptor descriptor, int outputStride) : base(name)
    {
        if (!descriptor.OutputStrides.Contains(outputStride))
            throw new UserException($"unsupported output stride {outputStride} for {descriptor.Name}: expected {string.Join(" or ", descriptor.OutputStrides)}");
        Descriptor = descriptor;
        OutputStride = outputStride;
    }

    /// <summary>What this backbone is (its catalogue entry).</summary>
    public BackboneDescriptor Descriptor { get; }
    public int OutputStride { get; }
    public int LowLevelChannels => Descriptor.LowLevelChannels;
    public int OutputChannels => Descriptor.HighLevelChannels;

    /// <summary>Writes the eval-mode forward into a graph: input name → (high-level, low-level) names.</summary>
    public abstract (string High, string Low) WriteGraph(IBackboneGraph g, string input);
}
