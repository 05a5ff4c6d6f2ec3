namespace DeepLabTorch.Models;

/// <summary>Maps (backbone, output stride, number of classes) to a freshly initialised model.</summary>
public static class ModelFactory
{
    public static DeepLabV3Plus Create(ModelConfig config) => new(config.Validate());

    /// <summary>The number of trainable values (the reference counts 5,816,053 / 54,705,317 / 59,344,309 at 21 classes).</summary>
    public static long ParameterCount(DeepLabV3Plus model) => model.parameters().Sum(p => p.numel());
}
