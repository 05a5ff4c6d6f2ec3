using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Inference;

/// <summary>Conversions between RGB bytes (row-major HWC) and float tensors [1,3,H,W] in [0,1].</summary>
internal static class RgbTensors
{
    /// <summary>ImageNet statistics the models were trained with: the data pipeline's own.</summary>
    public static float[] Mean => Data.ImageTensor.Mean;
    public static float[] Std => Data.ImageTensor.Std;

    /// <summary>[1,3,H,W] float32 in [0,1].</summary>
    public static Tensor FromBytes(byte[] rgb, int height, int width)
    {
        if (rgb.Length != (long)height * width * 3)
            throw new ArgumentException($"{rgb.Length} bytes are not a {width}x{height} RGB image");
        using var scope = NewDisposeScope();
        var hwc = tensor(rgb, new long[] { height, width, 3 });
        var chw = hwc.permute(2, 0, 1).unsqueeze(0).to(ScalarType.Float32).div_(HeldScalars.Byte255).contiguous();
        return chw.MoveToOuterDisposeScope();
    }

    /// <summary>Rounds [1,3,H,W] (or [3,H,W]) values in [0,1] to RGB bytes, clamping outliers.</summary>
    public static byte[] ToBytes(Tensor rgb01)
    {
        using var scope = NewDisposeScope();
        var x = rgb01.dim() == 4 ? rgb01.select(0, 0) : rgb01;
        if (x.dim() != 3 || x.size(0) != 3) throw new ArgumentException($"expected [1,3,H,W], got [{string.Join(",", rgb01.shape)}]");
        var bytes = x.mul(HeldScalars.Byte255).round().clamp(HeldScalars.Zero, HeldScalars.Byte255).permute(1, 2, 0).to(ScalarType.Byte).contiguous();
        return bytes.ToArray<byte>();
    }

    /// <summary>The model's input: (x − mean) / std per channel, for x [N,3,H,W] in [0,1].</summary>
    public static Tensor Normalize(Tensor rgb01)
    {
        using var scope = NewDisposeScope();
        var mean = tensor(Mean, new long[] { 1, 3, 1, 1 }).to(rgb01.device);
        var std = tensor(Std, new long[] { 1, 3, 1, 1 }).to(rgb01.device);
        return ((rgb01 - mean) / std).MoveToOuterDisposeScope();
    }
}
