using System.IO.Hashing;
using System.Buffers.Binary;
using System.IO.Compression;

namespace DeepLabTorch.Data.Png;

/// <summary>A managed PNG encoder for masks, predictions and report images: 8-bit palette, gray and RGB, not interlaced.</summary>
internal static class PngWriter
{
    // Masks and predictions are small and flat: a fast level keeps writing cheap (libpng's level 3, as before).
    private const int CompressionLevel = 3;

    /// <summary>Class indices (h*w) with a palette of 1 to 256 RGB triples.</summary>
    public static byte[] EncodePalette(ReadOnlySpan<byte> indices, int height, int width, ReadOnlySpan<byte> palette)
    {
        if (palette.Length < 3 || palette.Length > 768 || palette.Length % 3 != 0)
            throw new ArgumentException("a PNG palette holds 1 to 256 RGB triples", nameof(palette));
        return Encode(indices, height, width, PngColorType.Palette, palette);
    }

    /// <summary>8-bit gray values (h*w).</summary>
    public static byte[] EncodeGray(ReadOnlySpan<byte> values, int height, int width) =>
        Encode(values, height, width, PngColorType.Gray, default);

    /// <summary>8-bit RGB pixels (h*w*3, HWC).</summary>
    public static byte[] EncodeRgb(ReadOnlySpan<byte> rgb, int height, int width) =>
        Encode(rgb, height, width, PngColorType.Rgb, default);

    private static byte[] Encode(ReadOnlySpan<byte> pixels, int height, int width, PngColorType color, ReadOnlySpan<byte> palette)
    {
        var header = new PngHeader(width, height, 8, color, false);
        if (height <= 0 || width <= 0) throw new ArgumentException("cannot encode an empty image");
        long rowBytes = header.RowBytes(width);
        if (pixels.Length != rowBytes * height) throw new ArgumentException($"{pixels.Length} bytes do not hold a {height}x{width}x{header.Channels} image");
        var output = new MemoryStream(pixels.Length / 4 + 1024);
        output.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        Span<byte> ihdr = stackalloc byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, (uint)width);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr[4..], (uint)height);
        ihdr[8] = 8;
        ihdr[9] = (byte)color;
        ihdr[10] = ihdr[11] = ihdr[12] = 0;
        WriteChunk(output, "IHDR"u8, ihdr);
        if (color == PngColorType.Palette) WriteChunk(output, "PLTE"u8, palette);
        WriteChunk(output, "IDAT"u8, Compress(pixels, header, (int)rowBytes));
        WriteChunk(output, "IEND"u8, default);
        return output.ToArray();
    }

    // Filters every row and deflates them. Palette rows stay unfiltered (the specification's advice: indices are
    // not magnitudes); other rows take the filter with the smallest sum of absolute residuals (libpng's heuristic).
    private static ReadOnlySpan<byte> Compress(ReadOnlySpan<byte> pixels, PngHeader header, int rowBytes)
    {
        var compressed = new MemoryStream(pixels.Length / 4 + 64);
        using (var z = new ZLibStream(compressed, new ZLibCompressionOptions { CompressionLevel = CompressionLevel }, leaveOpen: true))
        {
            var line = new byte[1 + rowBytes];
            var trial = new byte[rowBytes];
            for (int y = 0; y < header.Height; y++)
            {
                var row = pixels.Slice(y * rowBytes, rowBytes);
                var prev = y == 0 ? ReadOnlySpan<byte>.Empty : pixels.Slice((y - 1) * rowBytes, rowBytes);
                if (header.ColorType == PngColorType.Palette)
                {
                    line[0] = PngFilters.None;
                    row.CopyTo(line.AsSpan(1));
                }
                else ChooseFilter(row, prev, header.FilterStride, line, trial);
                z.Write(line);
            }
        }
        return compressed.GetBuffer().AsSpan(0, (int)compressed.Length);
    }

    private static void ChooseFilter(ReadOnlySpan<byte> row, ReadOnlySpan<byte> prev, int stride, byte[] line, byte[] trial)
    {
        long best = long.MaxValue;
        for (int f = PngFilters.None; f <= PngFilters.Paeth; f++)
        {
            PngFilters.Filter(f, row, prev, stride, trial);
            long cost = 0;
            foreach (byte b in trial) cost += b < 128 ? b : 256 - b;
            if (cost >= best) continue;
            best = cost;
            line[0] = (byte)f;
            trial.CopyTo(line.AsSpan(1));
        }
    }

    private static void WriteChunk(Stream output, ReadOnlySpan<byte> type, ReadOnlySpan<byte> body)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(word, (uint)body.Length);
        output.Write(word);
        output.Write(type);
        output.Write(body);
        // The chunk CRC (ISO 3309, the same CRC-32 as zip) covers the type and the body.
        var crc = new Crc32();
        crc.Append(type);
        crc.Append(body);
        BinaryPrimitives.WriteUInt32BigEndian(word, crc.GetCurrentHashAsUInt32());
        output.Write(word);
    }
}
