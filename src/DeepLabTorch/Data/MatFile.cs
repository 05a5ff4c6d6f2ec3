using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace DeepLabTorch.Data;

/// <summary>
/// A reader for the slice of MATLAB's MAT v5 format that SBD's cls/*.mat files use: a 128-byte
/// header, then data elements (8-byte tags, or 4-byte "small element" tags), miCOMPRESSED (zlib)
/// wrappers around miMATRIX arrays, numeric and struct classes. Cells, sparse and other classes are
/// skipped by length. Little-endian files only (every MAT file written on x86/ARM).
/// </summary>
internal static class MatFile
{
    private const int MiInt8 = 1, MiUInt8 = 2, MiInt16 = 3, MiUInt16 = 4, MiInt32 = 5, MiUInt32 = 6, MiSingle = 7,
        MiDouble = 9, MiInt64 = 12, MiUInt64 = 13, MiMatrix = 14, MiCompressed = 15, MiUtf8 = 16;
    private const int MxStruct = 2, MxDouble = 6, MxSingle = 7, MxInt8 = 8, MxUInt8 = 9, MxInt16 = 10, MxUInt16 = 11,
        MxInt32 = 12, MxUInt32 = 13, MxInt64 = 14, MxUInt64 = 15;

    /// <summary>
    /// Reads SBD's class mask: variable GTcls (a struct), field Segmentation (uint8 or double), an
    /// H x W matrix stored column-major. Returns it row-major. Bad files throw DataException.
    /// </summary>
    public static (byte[] Mask, int Height, int Width) ReadSbdSegmentation(string path)
    {
        var bytes = ImageCodec.ReadFile(path);
        try
        {
            var seg = FindSegmentation(bytes) ?? throw new DataException(path, "no variable GTcls with a field Segmentation (not an SBD cls file)");
            return ToMask(seg, path);
        }
        catch (FormatException e)
        {
            throw new DataException(path, "unreadable MAT file: " + e.Message, e);
        }
        catch (InvalidDataException e)
        {
            throw new DataException(path, "unreadable MAT file: corrupt zlib data (" + e.Message + ")", e);
        }
    }

    /// <summary>A parsed array: class, dimensions, name, numeric values or struct fields.</summary>
    internal sealed class MatArray
    {
        public int Class;
        public int[] Dims = Array.Empty<int>();
        public string Name = "";
        public double[]? Values;                 // numeric: real part, column-major
        public Dictionary<string, MatArray>? Fields; // struct 1x1: field -> array
    }

    private static MatArray? FindSegmentation(byte[] file)
    {
        if (file.Length < 128) throw new FormatException($"only {file.Length} bytes; a MAT v5 file has a 128-byte header");
        var text = Encoding.ASCII.GetString(file, 0, 116);
        if (text.StartsWith("MATLAB 7.3", StringComparison.Ordinal))
            throw new FormatException("MAT v7.3 (HDF5) files are not supported; save with -v7 or scipy.io.savemat");
        if (!text.StartsWith("MATLAB", StringComparison.Ordinal))
            throw new FormatException("no MATLAB 5.0 MAT-file header (is this a MAT v4 file or not a MAT file?)");
        if (file[126] == (byte)'M' && file[127] == (byte)'I')
            throw new FormatException("big-endian MAT files are not supported");
        if (!(file[126] == (byte)'I' && file[127] == (byte)'M'))
            throw new FormatException("bad endian indicator in the header");
        int pos = 128;
        MatArray? fallback = null;
        while (pos < file.Length)
        {
            if (file.Length - pos < 8) break; // trailing padding
            var (type, size, dataStart, next) = ReadTag(file, pos, file.Length);
            ReadOnlySpan<byte> body = file.AsSpan(dataStart, size);
            if (type == MiCompressed)
            {
                var inner = Inflate(body);
                var (t2, s2, d2, _) = ReadTag(inner, 0, inner.Length);
                if (t2 != MiMatrix) { pos = next; continue; }
                var arr = ParseMatrix(inner.AsSpan(d2, s2));
                if (Pick(arr, ref fallback) is { } found) return found;
            }
            else if (type == MiMatrix)
            {
                var arr = ParseMatrix(body);
                if (Pick(arr, ref fallback) is { } found) return found;
            }
            pos = next;
        }
        return fallback;
    }

    private static MatArray? Pick(MatArray arr, ref MatArray? fallback)
    {
        if (arr.Name == "GTcls" && arr.Fields != null && arr.Fields.TryGetValue("Segmentation", out var seg)) return seg;
        // A bare matrix named Segmentation (some converted copies) is accepted if no GTcls exists.
        if (arr.Name == "Segmentation" && arr.Values != null) fallback ??= arr;
        return null;
    }

    private static byte[] Inflate(ReadOnlySpan<byte> compressed)
    {
        using var src = new MemoryStream(compressed.ToArray(), writable: false);
        using var z = new ZLibStream(src, CompressionMode.Decompress);
        using var dst = new MemoryStream();
        z.CopyTo(dst);
        return dst.ToArray();
    }

    /// <summary>Reads a tag at pos: (type, byte count, data offset, offset of the next element).</summary>
    private static (int Type, int Size, int DataStart, int Next) ReadTag(byte[] buf, int pos, int end)
    {
        if (end - pos < 8) throw new FormatException($"truncated data element tag at byte {pos}");
        uint first = BinaryPrimitives.ReadUInt32LittleEndian(buf.AsSpan(pos));
        if ((first >> 16) != 0)
        {
            // Small element: type and size share the first word, data in the next 4 bytes.
            int t = (int)(first & 0xFFFF), n = (int)(first >> 16);
            if (n > 4) throw new FormatException($"bad small data element at byte {pos}");
            return (t, n, pos + 4, pos + 8);
        }
        int type = (int)first;
        uint size = BinaryPrimitives.ReadUInt32LittleEndian(buf.AsSpan(pos + 4));
        long dataEnd = pos + 8L + size;
        if (dataEnd > end) throw new FormatException($"data element at byte {pos} claims {size} bytes but the data ends at {end} (truncated file?)");
        // Elements are padded to 8 bytes; compressed ones are not (their size is exact).
        long next = type == MiCompressed ? dataEnd : pos + 8L + ((size + 7L) & ~7L);
        return (type, (int)size, pos + 8, (int)Math.Min(next, end));
    }

    private static MatArray ParseMatrix(ReadOnlySpan<byte> body)
    {
        var buf = body.ToArray();
        var arr = new MatArray();
        if (buf.Length == 0) return arr; // an empty array has no sub-elements
        int pos = 0;
        var (t, s, d, next) = ReadTag(buf, pos, buf.Length);
        if (t != MiUInt32 || s < 8) throw new FormatException("array flags missing");
        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(buf.AsSpan(d));
        arr.Class = (int)(flags & 0xFF);
        bool complex = (flags & 0x800) != 0;
        pos = next;
        (t, s, d, next) = ReadTag(buf, pos, buf.Length);
        if (t != MiInt32 || s % 4 != 0) throw new FormatException("array dimensions missing");
        arr.Dims = new int[s / 4];
        for (int i = 0; i < arr.Dims.Length; i++) arr.Dims[i] = BinaryPrimitives.ReadInt32LittleEndian(buf.AsSpan(d + 4 * i));
        pos = next;
        (t, s, d, next) = ReadTag(buf, pos, buf.Length);
        if (t != MiInt8) throw new FormatException("array name missing");
        arr.Name = Encoding.ASCII.GetString(buf, d, s);
        pos = next;
        long count = 1;
        foreach (var dim in arr.Dims)
        {
            if (dim < 0) throw new FormatException("negative array dimension");
            count *= dim;
        }
        if (arr.Class == MxStruct)
        {
            (t, s, d, next) = ReadTag(buf, pos, buf.Length);
            if (t != MiInt32 || s != 4) throw new FormatException("struct field name length missing");
            int nameLen = BinaryPrimitives.ReadInt32LittleEndian(buf.AsSpan(d));
            pos = next;
            (t, s, d, next) = ReadTag(buf, pos, buf.Length);
            if (t != MiInt8 || nameLen <= 0 || s % nameLen != 0) throw new FormatException("struct field names missing");
            var names = new string[s / nameLen];
            for (int i = 0; i < names.Length; i++)
                names[i] = Encoding.ASCII.GetString(buf, d + i * nameLen, nameLen).TrimEnd('\0');
            pos = next;
            arr.Fields = new Dictionary<string, MatArray>(StringComparer.Ordinal);
            // Fields of element 0 only: SBD's GTcls is 1x1.
            for (long e = 0; e < count; e++)
                foreach (var name in names)
                {
                    (t, s, d, next) = ReadTag(buf, pos, buf.Length);
                    if (t != MiMatrix) throw new FormatException($"struct field {name} is not an array");
                    if (e == 0) arr.Fields[name] = ParseMatrix(buf.AsSpan(d, s));
                    pos = next;
                }
            return arr;
        }
        if (arr.Class is >= MxDouble and <= MxUInt64)
        {
            (t, s, d, _) = ReadTag(buf, pos, buf.Length);
            arr.Values = ReadNumbers(buf.AsSpan(d, s), t, count);
            _ = complex; // an imaginary part, if any, follows and is ignored
            return arr;
        }
        return arr; // cell, sparse, char, object...: not needed, skipped
    }

    private static double[] ReadNumbers(ReadOnlySpan<byte> data, int type, long count)
    {
        int size = type switch
        {
            MiInt8 or MiUInt8 or MiUtf8 => 1,
            MiInt16 or MiUInt16 => 2,
            MiInt32 or MiUInt32 or MiSingle => 4,
            MiDouble or MiInt64 or MiUInt64 => 8,
            _ => throw new FormatException($"unsupported numeric storage type {type}"),
        };
        if (data.Length != count * size) throw new FormatException($"array holds {data.Length} bytes, expected {count * size}");
        var v = new double[count];
        for (int i = 0; i < v.Length; i++)
        {
            var p = data.Slice(i * size, size);
            v[i] = type switch
            {
                MiInt8 => (sbyte)p[0],
                MiUInt8 or MiUtf8 => p[0],
                MiInt16 => BinaryPrimitives.ReadInt16LittleEndian(p),
                MiUInt16 => BinaryPrimitives.ReadUInt16LittleEndian(p),
                MiInt32 => BinaryPrimitives.ReadInt32LittleEndian(p),
                MiUInt32 => BinaryPrimitives.ReadUInt32LittleEndian(p),
                MiSingle => BinaryPrimitives.ReadSingleLittleEndian(p),
                MiDouble => BinaryPrimitives.ReadDoubleLittleEndian(p),
                MiInt64 => BinaryPrimitives.ReadInt64LittleEndian(p),
                _ => BinaryPrimitives.ReadUInt64LittleEndian(p),
            };
        }
        return v;
    }

    private static (byte[] Mask, int Height, int Width) ToMask(MatArray seg, string path)
    {
        if (seg.Values == null || seg.Dims.Length != 2) throw new DataException(path, "GTcls.Segmentation is not a 2-D numeric matrix");
        int h = seg.Dims[0], w = seg.Dims[1];
        if (h <= 0 || w <= 0) throw new DataException(path, "GTcls.Segmentation is empty");
        var mask = new byte[h * w];
        for (int x = 0; x < w; x++)
            for (int y = 0; y < h; y++)
            {
                double v = seg.Values[x * h + y];
                if (!(v >= 0 && v <= 255) || v != Math.Floor(v))
                    throw new DataException(path, $"GTcls.Segmentation value {v} at (x={x}, y={y}) is not a class index 0-255");
                mask[y * w + x] = (byte)v;
            }
        return (mask, h, w);
    }
}
