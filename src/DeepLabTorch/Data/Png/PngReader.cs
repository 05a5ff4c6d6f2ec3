using System.IO.Hashing;
using System.Buffers.Binary;
using System.IO.Compression;

namespace DeepLabTorch.Data.Png;

/// <summary>
/// A managed PNG decoder for class masks: it returns palette indices and gray levels as stored (no image
/// library hands out palette indices). Every failure is a <see cref="DataException"/> naming the file;
/// sizes are checked against limits and against the compressed data before anything large is allocated.
/// </summary>
internal static class PngReader
{
    /// <summary>The largest side accepted (as the native codec did): absurd headers must not allocate gigabytes.</summary>
    public const int MaxSide = 1 << 15;

    /// <summary>The most pixels accepted (2^28, a 16384 x 16384 mask).</summary>
    public const long MaxPixels = 1L << 28;

    // Deflate expands at most 1032-fold (a 258-byte match in 2 bits): more pixels than that cannot be in the file.
    private const long MaxDeflateRatio = 1032;

    private static ReadOnlySpan<byte> Signature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    // Adam7 passes: x start, y start, x step, y step.
    private static readonly (int X, int Y, int Dx, int Dy)[] Adam7 =
        [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];

    private static readonly (int X, int Y, int Dx, int Dy)[] SinglePass = [(0, 0, 1, 1)];

    public static bool IsPng(ReadOnlySpan<byte> data) => data.Length >= 8 && data[..8].SequenceEqual(Signature);

    /// <summary>Reads and checks the IHDR chunk only.</summary>
    public static PngHeader ReadHeader(string name, ReadOnlySpan<byte> data)
    {
        if (!IsPng(data)) throw Fail(name, "not a PNG file (bad signature)");
        if (data.Length < 8 + 12 + 13) throw Fail(name, "truncated PNG (no complete IHDR header)");
        var chunk = data[8..];
        if (!chunk.Slice(4, 4).SequenceEqual("IHDR"u8)) throw Fail(name, "corrupt PNG (the first chunk is not IHDR)");
        if (BinaryPrimitives.ReadUInt32BigEndian(chunk) != 13) throw Fail(name, "corrupt PNG (IHDR is not 13 bytes)");
        if (Crc32.HashToUInt32(chunk.Slice(4, 17)) != BinaryPrimitives.ReadUInt32BigEndian(chunk.Slice(21, 4)))
            throw Fail(name, "corrupt PNG (bad CRC in IHDR)");
        return ParseHeader(name, chunk.Slice(8, 13));
    }

    private static PngHeader ParseHeader(string name, ReadOnlySpan<byte> ihdr)
    {
        uint w = BinaryPrimitives.ReadUInt32BigEndian(ihdr), h = BinaryPrimitives.ReadUInt32BigEndian(ihdr[4..]);
        int depth = ihdr[8];
        var color = (PngColorType)ihdr[9];
        if (w == 0 || h == 0 || w > MaxSide || h > MaxSide || (long)w * h > MaxPixels)
            throw Fail(name, $"implausible image size {w}x{h}");
        bool depthOk = color switch
        {
            PngColorType.Gray => depth is 1 or 2 or 4 or 8 or 16,
            PngColorType.Palette => depth is 1 or 2 or 4 or 8,
            PngColorType.Rgb or PngColorType.GrayAlpha or PngColorType.Rgba => depth is 8 or 16,
            _ => throw Fail(name, $"corrupt PNG (unknown colour type {ihdr[9]})"),
        };
        if (!depthOk) throw Fail(name, $"corrupt PNG (bit depth {depth} is not allowed for colour type {ihdr[9]})");
        if (ihdr[10] != 0 || ihdr[11] != 0) throw Fail(name, "corrupt PNG (unknown compression or filter method)");
        if (ihdr[12] > 1) throw Fail(name, $"corrupt PNG (unknown interlace method {ihdr[12]})");
        return new PngHeader((int)w, (int)h, depth, color, ihdr[12] == 1);
    }

    /// <summary>Decodes the whole file; see <see cref="PngImage"/> for the sample layout.</summary>
    public static PngImage Read(string name, ReadOnlySpan<byte> data)
    {
        var header = ReadHeader(name, data);
        var (idat, palette) = ReadChunks(name, data, header);
        var passes = header.Interlaced ? Adam7 : SinglePass;
        long rawSize = RawSize(header, passes);
        if (rawSize > MaxDeflateRatio * idat.Length + 1024)
            throw Fail(name, $"truncated PNG (IDAT data too short for {header.Width}x{header.Height})");
        if (rawSize > Array.MaxLength) throw Fail(name, $"PNG too large ({rawSize} bytes of pixel data)");
        var raw = Inflate(name, idat, (int)rawSize);
        long bytesPerSample = header.BitDepth == 16 ? 2 : 1;
        var samples = GC.AllocateUninitializedArray<byte>(checked((int)((long)header.Width * header.Height * header.Channels * bytesPerSample)));
        int offset = 0;
        foreach (var pass in passes)
            offset = DecodePass(name, header, pass, raw, offset, samples);
        return new PngImage(header, samples, palette);
    }

    // Walks the chunks after IHDR: collects PLTE and the IDAT stream, checks CRCs, stops at IEND.
    private static (byte[] Idat, byte[]? Palette) ReadChunks(string name, ReadOnlySpan<byte> data, PngHeader header)
    {
        var idat = new List<(int Start, int Length)>();
        byte[]? palette = null;
        bool idatEnded = false;
        long total = 0;
        for (int pos = 8 + 25; ;)
        {
            if (pos + 12 > data.Length) throw Fail(name, "truncated PNG (the data ends before IEND)");
            uint length = BinaryPrimitives.ReadUInt32BigEndian(data[pos..]);
            var type = data.Slice(pos + 4, 4);
            string typeName = ChunkName(type);
            if (length > int.MaxValue || pos + 12L + length > data.Length)
                throw Fail(name, $"truncated PNG (chunk {typeName} ends past the end of the file)");
            var body = data.Slice(pos + 8, (int)length);
            bool critical = (type[0] & 0x20) == 0;
            if (Crc32.HashToUInt32(data.Slice(pos + 4, 4 + (int)length)) != BinaryPrimitives.ReadUInt32BigEndian(data[(pos + 8 + (int)length)..]))
            {
                // Like libpng: a bad critical chunk is an error, a bad ancillary one (never used here) is skipped.
                if (critical) throw Fail(name, $"corrupt PNG (bad CRC in chunk {typeName})");
                pos += 12 + (int)length;
                continue;
            }
            if (type.SequenceEqual("IEND"u8)) break;
            if (type.SequenceEqual("IDAT"u8))
            {
                if (idatEnded) throw Fail(name, "corrupt PNG (IDAT chunks are not consecutive)");
                idat.Add((pos + 8, (int)length));
                total += length;
            }
            else
            {
                if (idat.Count > 0) idatEnded = true;
                if (type.SequenceEqual("PLTE"u8)) palette = ReadPalette(name, body, header);
                else if (type.SequenceEqual("IHDR"u8)) throw Fail(name, "corrupt PNG (a second IHDR chunk)");
                else if (critical) throw Fail(name, $"unsupported PNG (unknown critical chunk {typeName})");
            }
            pos += 12 + (int)length;
        }
        if (idat.Count == 0) throw Fail(name, "corrupt PNG (no IDAT chunk)");
        if (header.ColorType == PngColorType.Palette && palette == null) throw Fail(name, "corrupt PNG (a palette image without PLTE)");
        if (total > Array.MaxLength) throw Fail(name, "PNG too large");
        var stream = GC.AllocateUninitializedArray<byte>((int)total);
        int at = 0;
        foreach (var (start, len) in idat)
        {
            data.Slice(start, len).CopyTo(stream.AsSpan(at));
            at += len;
        }
        return (stream, palette);
    }

    private static byte[] ReadPalette(string name, ReadOnlySpan<byte> body, PngHeader header)
    {
        if (body.Length == 0 || body.Length % 3 != 0 || body.Length > 768)
            throw Fail(name, $"corrupt PNG (a PLTE chunk of {body.Length} bytes)");
        if (header.ColorType is PngColorType.Gray or PngColorType.GrayAlpha) throw Fail(name, "corrupt PNG (PLTE in a gray image)");
        return body.ToArray();
    }

    private static string ChunkName(ReadOnlySpan<byte> type)
    {
        Span<char> c = stackalloc char[4];
        for (int i = 0; i < 4; i++) c[i] = type[i] is >= (byte)'A' and <= (byte)'z' ? (char)type[i] : '?';
        return new string(c);
    }

    private static long RawSize(PngHeader header, (int X, int Y, int Dx, int Dy)[] passes)
    {
        long size = 0;
        foreach (var (pw, ph) in passes.Select(p => PassSize(header, p)))
            if (pw > 0 && ph > 0) size += ph * (1 + header.RowBytes(pw));
        return size;
    }

    private static (long W, long H) PassSize(PngHeader header, (int X, int Y, int Dx, int Dy) p) =>
        ((header.Width - p.X + p.Dx - 1L) / p.Dx, (header.Height - p.Y + p.Dy - 1L) / p.Dy);

    // Exactly rawSize bytes must come out of the zlib stream, and nothing after them.
    private static byte[] Inflate(string name, byte[] idat, int rawSize)
    {
        var raw = GC.AllocateUninitializedArray<byte>(rawSize);
        try
        {
            using var z = new ZLibStream(new MemoryStream(idat, false), CompressionMode.Decompress);
            int got = z.ReadAtLeast(raw, rawSize, throwOnEndOfStream: false);
            if (got < rawSize) throw Fail(name, $"truncated PNG (the image data ends after {got} of {rawSize} bytes)");
            // Reading past the end also makes zlib check the stream's Adler-32.
            Span<byte> probe = stackalloc byte[1];
            if (z.Read(probe) > 0) throw Fail(name, "corrupt PNG (more image data than its size needs)");
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            // zlib reports a bad stream as InvalidDataException, some bad headers as ZLibException (an IOException).
            throw new DataException(name, "corrupt PNG (bad zlib stream: " + e.Message + ")", e);
        }
        return raw;
    }

    // Unfilters one pass's scanlines in place and scatters their samples into the image; returns the next offset.
    private static int DecodePass(string name, PngHeader header, (int X, int Y, int Dx, int Dy) pass, byte[] raw, int offset, byte[] samples)
    {
        var (pw, ph) = PassSize(header, pass);
        if (pw == 0 || ph == 0) return offset;
        int rowBytes = (int)header.RowBytes(pw);
        int stride = header.FilterStride;
        for (int r = 0; r < ph; r++)
        {
            int filter = raw[offset];
            var row = raw.AsSpan(offset + 1, rowBytes);
            var prev = r == 0 ? Span<byte>.Empty : raw.AsSpan(offset - rowBytes, rowBytes);
            PngFilters.Unfilter(name, filter, row, prev, stride);
            Scatter(header, pass, (int)pw, pass.Y + r * pass.Dy, row, samples);
            offset += 1 + rowBytes;
        }
        return offset;
    }

    // Copies one unfiltered scanline's samples (unpacking 1/2/4-bit ones) to their pixels in the image.
    private static void Scatter(PngHeader header, (int X, int Y, int Dx, int Dy) pass, int pw, int y, ReadOnlySpan<byte> row, byte[] samples)
    {
        int depth = header.BitDepth;
        if (depth < 8)
        {
            int mask = (1 << depth) - 1;
            long rowStart = (long)y * header.Width;
            for (int c = 0; c < pw; c++)
            {
                int bit = c * depth;
                samples[rowStart + pass.X + (long)c * pass.Dx] = (byte)((row[bit >> 3] >> (8 - depth - (bit & 7))) & mask);
            }
            return;
        }
        int pixelBytes = header.Channels * depth / 8;
        long lineStart = (long)y * header.Width * pixelBytes;
        if (pass.Dx == 1)
        {
            row.CopyTo(samples.AsSpan((int)lineStart, row.Length));
            return;
        }
        for (int c = 0; c < pw; c++)
            row.Slice(c * pixelBytes, pixelBytes).CopyTo(samples.AsSpan((int)(lineStart + (long)(pass.X + c * pass.Dx) * pixelBytes), pixelBytes));
    }

    private static DataException Fail(string name, string reason) => new(name, reason);
}
