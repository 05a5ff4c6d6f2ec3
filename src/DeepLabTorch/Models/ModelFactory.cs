using static TorchSharp.torch;

namespace DeepLabTorch.Models;

/// <summary>Maps (backbone, output stride, number of classes) to a freshly initialised model.</summary>
public static class ModelFactory
{
    /// <summary>DeepLabV3+ over a backbone of the catalogue.</summary>
    public static DeepLabV3Plus Create(ModelConfig config) => new(config.Validate());

    /// <summary>Any model of the catalogue: DeepLabV3+ over a backbone, or a whole network (bisenet, stdc1, stdc2).</summary>
    public static SegmentationModel Build(ModelConfig config) =>
        ModelCatalog.Network(config.Validate().Backbone) is { } network ? network.Create(config.NumClasses) : new DeepLabV3Plus(config);

    /// <summary>The number of trainable values (the reference counts 5,816,053 / 54,705,317 / 59,344,309 at 21 classes).</summary>
    public static long ParameterCount(nn.Module model) => model.parameters().Sum(p => p.numel());
}
