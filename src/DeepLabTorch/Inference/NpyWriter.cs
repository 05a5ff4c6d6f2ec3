using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Inference;

/// <summary>
/// Writes NumPy's .npy format, version 1.0: magic, a Python-dict header ('&lt;f4', C order, the shape)
/// padded with spaces to a 64-byte boundary and closed by a newline, then little-endian float32 data.
/// </summary>
internal static class NpyWriter
{
    private static readonly byte[] Magic = { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0 };

    /// <summary>The header bytes (magic, version, length, dict) for a float32 C-order array of this shape.</summary>
    public static byte[] Header(IReadOnlyList<long> shape)
    {
        var dims = shape.Count == 1
            ? shape[0].ToString(CultureInfo.InvariantCulture) + ","
            : string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture)));
        var dict = $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}";
        // magic(6) + version(2) + length(2) + dict + padding + '\n' is a multiple of 64.
        int unpadded = Magic.Length + 2 + dict.Length + 1;
        int total = (unpadded + 63) / 64 * 64;
        int headerLen = total - Magic.Length - 2;
        if (headerLen > ushort.MaxValue) throw new ArgumentException("shape too long for a version 1.0 .npy header");
        var text = dict.PadRight(headerLen - 1) + "\n";
        var bytes = new byte[total];
        Magic.CopyTo(bytes, 0);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(Magic.Length), (ushort)headerLen);
        Encoding.ASCII.GetBytes(text, bytes.AsSpan(Magic.Length + 2));
        return bytes;
    }

    /// <summary>Writes values (C order) with the given shape to path, through a temporary file and a rename.</summary>
    public static void Write(string path, ReadOnlySpan<float> values, IReadOnlyList<long> shape)
    {
        long n = 1;
        foreach (var d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension {d} in shape");
            n *= d;
        }
        if (n != values.Length) throw new ArgumentException($"{values.Length} values do not fill shape ({string.Join(", ", shape)})");
        var tmp = path + ".tmp";
        using (var f = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
        {
            f.Write(Header(shape));
            if (BitConverter.IsLittleEndian)
            {
                f.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values));
            }
            else
            {
                var buf = new byte[4];
                foreach (var v in values)
                {
                    BinaryPrimitives.WriteSingleLittleEndian(buf, v);
                    f.Write(buf);
                }
            }
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Writes a float32 tensor (any device, any layout) with its own shape.</summary>
    public static void Write(string path, torch.Tensor t)
    {
        if (t.dtype != ScalarType.Float32) throw new ArgumentException($"the .npy writer takes float32 tensors, got {t.dtype}");
        var data = t.ToArray<float>();
        Write(path, data, t.shape);
    }
}
