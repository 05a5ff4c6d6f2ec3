namespace DeepLabTorch.Models;

/// <summary>
/// What a model is: backbone (a ModelCatalog name: a DeepLabV3+ backbone or a whole network), output stride (8 or 16, DeepLabV3+ only),
/// number of classes, and whether bilinear upsampling aligns corners (the reference does).
/// </summary>
public sealed record ModelConfig(string Backbone = "mobilenet", int OutputStride = 16, int NumClasses = 21, bool AlignCorners = true)
{
    /// <summary>Throws a UserException naming the first invalid field.</summary>
    public ModelConfig Validate()
    {
        if (NumClasses < 1)
            throw new UserException($"the number of classes must be at least 1, got {NumClasses}");
        // A whole network has its own strides: the output stride is DeepLabV3+'s setting.
        if (ModelCatalog.IsNetwork(Backbone)) return this;
        var backbone = ModelCatalog.Get(Backbone);
        if (!backbone.OutputStrides.Contains(OutputStride))
            throw new UserException($"unsupported output stride {OutputStride}: expected one of {string.Join(", ", backbone.OutputStrides)}");
        if (NumClasses < 1)
            throw new UserException($"the number of classes must be at least 1, got {NumClasses}");
        return this;
    }
}
