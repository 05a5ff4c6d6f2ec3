using DeepLabTorch.Extensions;
using TorchSharp;

namespace DeepLabTorch.Data;

/// <summary>One decoded (image, mask) pair: RGB HWC bytes and class indices HW (255 = ignore).</summary>
internal sealed class SegmentationSample
{
    public required string Id { get; init; }
    public required int Height { get; init; }
    public required int Width { get; init; }
    /// <summary>RGB, row-major HWC, Height*Width*3 bytes.</summary>
    public required byte[] Image { get; init; }
    /// <summary>Class index per pixel, Height*Width bytes; IgnoreIndex marks void.</summary>
    public required byte[] Mask { get; init; }
}

/// <summary>A split of a segmentation data set: random access to decoded samples.</summary>
internal interface ISegmentationDataset
{
    string Name { get; }
    int Count { get; }
    IReadOnlyList<string> ClassNames { get; }
    int NumClasses => ClassNames.Count;
    int IgnoreIndex => 255;
    /// <summary>Decodes sample i. Bad files throw DataException naming the file and the reason.</summary>
    SegmentationSample Load(int index);
}

/// <summary>A collated batch: images NCHW float32 (normalized), masks NHW int64.</summary>
internal sealed class Batch : IDisposable
{
    public Batch(torch.Tensor images, torch.Tensor masks, IReadOnlyList<string> ids)
    {
        Images = images;
        Masks = masks;
        Ids = ids;
    }

    public torch.Tensor Images { get; }
    public torch.Tensor Masks { get; }
    public IReadOnlyList<string> Ids { get; }
    public int Size => Ids.Count;
    /// <summary>The batch's position in its epoch (batches dropped by --skip-bad keep their numbers).</summary>
    public int Index { get; internal set; }

    public void Dispose()
    {
        Images.Dispose();
        Masks.Dispose();
    }
}

/// <summary>Bad input data (an unreadable or truncated image, a bad mask): the message names the file and the reason.</summary>
public sealed class DataException : Exception
{
    internal DataException(string path, string reason, Exception? inner = null) : base($"{path}: {reason}", inner)
    {
        Path = path;
        Reason = reason;
    }

    /// <summary>The file at fault.</summary>
    public string Path { get; }

    /// <summary>What is wrong with it.</summary>
    public string Reason { get; }

    /// <summary>For a mask value outside the classes: the largest such value in the file (null for other problems).</summary>
    public int? LabelOutOfRange { get; internal init; }
}
