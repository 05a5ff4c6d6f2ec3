using DeepLabTorch.Extensions;
using TorchSharp;

namespace DeepLabTorch.Data;

/// <summary>RGB bytes to the network's input: [1,3,H,W] float32, /255 then ImageNet mean/std.</summary>
public static class ImageTensor
{
    internal static readonly float[] Mean = { 0.485f, 0.456f, 0.406f };
    internal static readonly float[] Std = { 0.229f, 0.224f, 0.225f };

    /// <summary>The network input [1,3,H,W] float32 for RGB HWC bytes (for example <see cref="ImageCodec.DecodeImage(string)"/>'s).</summary>
    /// <exception cref="ArgumentException">The bytes do not hold a height × width RGB image.</exception>
    public static torch.Tensor FromRgb(byte[] rgb, int height, int width)
    {
        if (height <= 0 || width <= 0 || (long)height * width * 3 != rgb.Length)
            throw new ArgumentException($"{rgb.Length} bytes do not hold a {height}x{width} RGB image");
        var buffer = GC.AllocateUninitializedArray<float>(3 * height * width);
        Normalize(rgb, height, width, buffer);
        return TensorExtensions.FromArray(buffer, new long[] { 1, 3, height, width });
    }

    /// <summary>Normalizes HWC bytes into a planar CHW float span (3*H*W).</summary>
    internal static void Normalize(byte[] rgb, int height, int width, Span<float> chw)
    {
        if (chw.Length < 3 * height * width) throw new ArgumentException("output span too small");
        var (scale, offset) = Transforms.Normalization.Value;
        ImageKernels.Normalize(rgb, height, width, scale, offset, chw);
    }
}
