using System.Buffers.Binary;
using System.IO.Compression;
using DeepLabTorch.Data.Png;

namespace DeepLabTorch.Tests.Data.Png;

/// <summary>Golden PNGs from tests/reference/png_fixtures.py (made once per run) and chunk surgery for bad files.</summary>
internal static class PngTestFiles
{
    private static readonly Lazy<string> FixtureDir = new(() =>
    {
        var dir = DataTestUtil.TempDir("png");
        DataTestUtil.Python("png_fixtures.py", "make", dir);
        return dir;
    });

    public static string Fixtures => FixtureDir.Value;

    /// <summary>A small valid palette PNG of h x w (our writer; its validity is checked by PIL in PngWriterTests).</summary>
    public static byte[] PalettePng(int h = 12, int w = 17)
    {
        var idx = new byte[h * w];
        for (int i = 0; i < idx.Length; i++) idx[i] = (byte)(i * 7 % 21);
        return PngWriter.EncodePalette(idx, h, w, DeepLabTorch.Data.Palette.Voc);
    }

    /// <summary>The chunks of a PNG as (offset of the length field, type, body length).</summary>
    public static List<(int Offset, string Type, int Length)> Chunks(byte[] png)
    {
        var list = new List<(int, string, int)>();
        for (int pos = 8; pos + 12 <= png.Length;)
        {
            int len = (int)BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(pos));
            list.Add((pos, System.Text.Encoding.ASCII.GetString(png, pos + 4, 4), len));
            pos += 12 + len;
        }
        return list;
    }

    /// <summary>Recomputes the CRC of the chunk whose length field is at offset (so a change gets past the CRC check).</summary>
    public static void FixCrc(byte[] png, int offset)
    {
        int len = (int)BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(offset));
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(offset + 8 + len), Crc(png.AsSpan(offset + 4, 4 + len)));
    }

    /// <summary>An independent bitwise CRC-32 (not the reader's table), to build test files.</summary>
    public static uint Crc(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (uint)-(int)(c & 1));
        }
        return ~c;
    }

    /// <summary>Replaces the IDAT chunk(s) by one holding zlib(raw), with a correct CRC.</summary>
    public static byte[] WithIdat(byte[] png, ReadOnlySpan<byte> raw)
    {
        var chunks = Chunks(png);
        var ms = new MemoryStream();
        using (var z = new ZLibStream(ms, CompressionLevel.Fastest, leaveOpen: true)) z.Write(raw);
        var body = ms.ToArray();
        var first = chunks.First(c => c.Type == "IDAT");
        var last = chunks.Last(c => c.Type == "IDAT");
        var idat = new byte[12 + body.Length];
        BinaryPrimitives.WriteUInt32BigEndian(idat, (uint)body.Length);
        "IDAT"u8.CopyTo(idat.AsSpan(4));
        body.CopyTo(idat, 8);
        FixCrc(idat, 0);
        return [.. png.AsSpan(0, first.Offset), .. idat, .. png.AsSpan(last.Offset + 12 + last.Length)];
    }

    /// <summary>The zlib-inflated IDAT stream (filter bytes and scanlines).</summary>
    public static byte[] RawIdat(byte[] png)
    {
        var ms = new MemoryStream();
        foreach (var c in Chunks(png).Where(c => c.Type == "IDAT")) ms.Write(png, c.Offset + 8, c.Length);
        ms.Position = 0;
        using var z = new ZLibStream(ms, CompressionMode.Decompress);
        var output = new MemoryStream();
        z.CopyTo(output);
        return output.ToArray();
    }
}
