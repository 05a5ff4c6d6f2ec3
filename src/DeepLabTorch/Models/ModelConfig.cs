namespace DeepLabTorch.Models;

/// <summary>
/// What a DeepLabV3+ model is: backbone (a ModelCatalog name), output stride (8 or 16),
/// number of classes, and whether bilinear upsampling aligns corners (the reference does).
/// </summary>
public sealed record ModelConfig(string Backbone = "mobilenet", int OutputStride = 16, int NumClasses = 21, bool AlignCorners = true)
{
    /// <summary>Throws a UserException naming the first invalid field.</summary>
    public ModelConfig Validate()
    {
        var backbone = ModelCatalog.Get(Backbone);
        if (!backbone.OutputStrides.Contains(OutputStride))
            throw new UserException($"unsupported output stride {OutputStride}: expected one of {string.Join(", ", backbone.OutputStrides)}");
        if (NumClasses < 1)
            throw new UserException($"the number of classes must be at least 1, got {NumClasses}");
        return this;
    }
}
