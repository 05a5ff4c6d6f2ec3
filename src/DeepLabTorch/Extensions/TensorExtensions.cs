using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Extensions;

/// <summary>What our code needs of a Tensor that TorchSharp 0.107 does not offer directly.</summary>
internal static class TensorExtensions
{
    [DllImport("LibTorchSharp")]
    private static extern IntPtr THSTensor_data(IntPtr handle);

    /// <summary>The address of a CPU tensor's first element (TorchSharp's own export; the tensor must stay alive).</summary>
    public static IntPtr DataPtr(this Tensor t)
    {
        if (t.device_type != DeviceType.CPU) throw new ArgumentException("DataPtr needs a CPU tensor");
        var p = THSTensor_data(t.Handle);
        if (p == IntPtr.Zero && t.numel() > 0) throw new InvalidOperationException("libtorch returned no data pointer");
        return p;
    }

    /// <summary>A copy of the values in row-major order (moved to the CPU and made contiguous first). The dtype must match T.</summary>
    public static unsafe T[] ToArray<T>(this Tensor t) where T : unmanaged
    {
        using var scope = NewDisposeScope();
        var c = t.detach().cpu().contiguous();
        CheckElement<T>(c.dtype);
        var result = new T[checked((int)c.numel())];
        if (result.Length > 0)
            new ReadOnlySpan<T>((void*)c.DataPtr(), result.Length).CopyTo(result);
        return result;
    }

    /// <summary>A new CPU tensor of this shape holding a copy of the array.</summary>
    public static unsafe Tensor FromArray<T>(T[] data, long[] shape) where T : unmanaged
    {
        long n = shape.Aggregate(1L, (a, b) => a * b);
        if (n != data.Length) throw new ArgumentException($"{data.Length} values do not fill shape [{string.Join(", ", shape)}]");
        var t = empty(shape, ElementType<T>());
        if (n > 0) data.AsSpan().CopyTo(new Span<T>((void*)t.DataPtr(), data.Length));
        return t;
    }

    /// <summary>The same values with NHWC strides: libtorch treats such a 4-D tensor as channels-last, and convolutions keep that layout.</summary>
    public static Tensor ContiguousChannelsLast(this Tensor t)
    {
        if (t.dim() != 4) return t.alias();
        using var nhwc = t.permute(0, 2, 3, 1);
        using var c = nhwc.contiguous();
        return c.permute(0, 3, 1, 2);
    }

    /// <summary>True for a 4-D tensor laid out NHWC in memory (strides of size-1 dimensions do not matter, as in PyTorch).</summary>
    public static bool IsChannelsLast(this Tensor t)
    {
        if (t.dim() != 4) return false;
        var s = t.stride();
        var z = t.shape;
        // Expected NHWC strides: C fastest, then W, then H, then N.
        long[] expected = [z[1] * z[3] * z[2], 1, z[1] * z[3], z[1]];
        for (int d = 0; d < 4; d++)
            if (z[d] > 1 && s[d] != expected[d]) return false;
        return true;
    }

    public static bool IsFloatingPoint(this ScalarType dtype) =>
        dtype is ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64;

    /// <summary>The libtorch dtype that stores T.</summary>
    public static ScalarType ElementType<T>() where T : unmanaged => default(T) switch
    {
        float => ScalarType.Float32,
        double => ScalarType.Float64,
        long => ScalarType.Int64,
        int => ScalarType.Int32,
        short => ScalarType.Int16,
        byte => ScalarType.Byte,
        sbyte => ScalarType.Int8,
        bool => ScalarType.Bool,
        Half => ScalarType.Float16,
        _ => throw new NotSupportedException($"no tensor dtype stores {typeof(T).Name}"),
    };

    private static void CheckElement<T>(ScalarType dtype) where T : unmanaged
    {
        if (ElementType<T>() != dtype && !(dtype == ScalarType.BFloat16 && typeof(T) == typeof(ushort)))
            throw new ArgumentException($"a {dtype} tensor cannot be read as {typeof(T).Name}");
    }
}
