namespace DeepLabTorch.Data.Png;

/// <summary>The five PNG colour types (the IHDR byte).</summary>
internal enum PngColorType : byte
{
    Gray = 0,
    Rgb = 2,
    Palette = 3,
    GrayAlpha = 4,
    Rgba = 6,
}

/// <summary>The IHDR fields that matter for decoding.</summary>
internal readonly record struct PngHeader(int Width, int Height, int BitDepth, PngColorType ColorType, bool Interlaced)
{
    public int Channels => ColorType switch
    {
        PngColorType.Rgb => 3,
        PngColorType.GrayAlpha => 2,
        PngColorType.Rgba => 4,
        _ => 1,
    };

    /// <summary>Bytes of one filtered scanline of <paramref name="width"/> pixels, without its filter byte.</summary>
    public long RowBytes(long width) => (width * Channels * BitDepth + 7) / 8;

    /// <summary>Bytes per complete pixel, at least 1: the distance the Sub/Average/Paeth filters look back.</summary>
    public int FilterStride => Math.Max(1, Channels * BitDepth / 8);
}

/// <summary>
/// A decoded PNG: samples unpacked to one byte each (up to 8 bits, unscaled: a 4-bit palette index stays 0-15) or
/// two big-endian bytes each at 16 bits; row-major, <see cref="PngHeader.Channels"/> samples per pixel.
/// </summary>
internal sealed class PngImage
{
    public PngImage(PngHeader header, byte[] samples, byte[]? palette)
    {
        Header = header;
        Samples = samples;
        Palette = palette;
    }

    public PngHeader Header { get; }
    public int Width => Header.Width;
    public int Height => Header.Height;
    public byte[] Samples { get; }

    /// <summary>The PLTE chunk as RGB triples (null when the file has none).</summary>
    public byte[]? Palette { get; }

    /// <summary>The value of one sample (0-65535 at 16 bits).</summary>
    public int Sample(long pixel, int channel)
    {
        long i = pixel * Header.Channels + channel;
        return Header.BitDepth == 16 ? (Samples[2 * i] << 8) | Samples[2 * i + 1] : Samples[i];
    }
}
