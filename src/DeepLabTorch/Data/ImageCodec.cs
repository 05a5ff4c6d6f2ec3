using DeepLabTorch.Data.Png;

namespace DeepLabTorch.Data;

/// <summary>
/// Image files in managed code: photos (JPEG, PNG, BMP, WebP) through SkiaSharp; masks and every PNG we write
/// through the managed PNG codec (Data/Png), which gives palette indices. Every decoding failure is a
/// <see cref="DataException"/> naming the file and the reason.
/// </summary>
public static class ImageCodec
{
    /// <summary>Decodes a JPEG, PNG, BMP or WebP file to RGB HWC bytes. Gray, palette, alpha (dropped) and 16-bit PNGs are converted.</summary>
    /// <exception cref="DataException">The file is missing, truncated or not an image; the message names it and the reason.</exception>
    public static (byte[] Rgb, int Height, int Width) DecodeImage(string path) => DecodeImage(path, ReadFile(path));

    /// <summary>Decodes an in-memory image; <paramref name="name"/> is used in error messages.</summary>
    public static (byte[] Rgb, int Height, int Width) DecodeImage(string name, ReadOnlySpan<byte> data)
    {
        // The PNG header check first: a bad PNG gets the managed reader's precise reason.
        if (PngReader.IsPng(data)) PngReader.ReadHeader(name, data);
        return SkiaCodec.DecodeRgb(name, data);
    }

    /// <summary>
    /// Decodes a class mask: palette PNG → palette indices (not colours); gray PNG → values (16-bit
    /// only when they fit a byte); RGB PNG → gray level when every pixel is gray, else the VOC colour's index;
    /// other formats (JPEG) → luminance.
    /// </summary>
    internal static (byte[] Indices, int Height, int Width) DecodeMask(string path) => DecodeMask(path, ReadFile(path));

    internal static (byte[] Indices, int Height, int Width) DecodeMask(string name, ReadOnlySpan<byte> data)
    {
        if (!PngReader.IsPng(data)) return SkiaCodec.DecodeGray(name, data);
        var png = PngReader.Read(name, data);
        return (MaskDecoder.ToIndices(name, png), png.Height, png.Width);
    }

    /// <summary>Height and width from the header only.</summary>
    internal static (int Height, int Width) Probe(string name, ReadOnlySpan<byte> data)
    {
        if (!PngReader.IsPng(data)) return SkiaCodec.Probe(name, data);
        var header = PngReader.ReadHeader(name, data);
        return (header.Height, header.Width);
    }

    /// <summary>Writes class indices as an 8-bit palette PNG (the VOC colour map unless a palette is given).</summary>
    public static void WritePalettePng(string path, byte[] indices, int height, int width, byte[]? palette = null) =>
        WriteAtomic(path, EncodePalettePng(indices, height, width, palette));

    internal static byte[] EncodePalettePng(byte[] indices, int height, int width, byte[]? palette = null)
    {
        CheckSize(indices.Length, height, width, 1);
        if (palette != null && (palette.Length % 3 != 0 || palette.Length < 3 || palette.Length > 768))
            throw new ArgumentException("a palette is 1 to 256 RGB triples", nameof(palette));
        return PngWriter.EncodePalette(indices, height, width, palette ?? Palette.Voc);
    }

    /// <summary>Writes an 8-bit grayscale PNG (for example 0/255 portrait masks).</summary>
    internal static void WriteGrayPng(string path, byte[] values, int height, int width)
    {
        CheckSize(values.Length, height, width, 1);
        WriteAtomic(path, PngWriter.EncodeGray(values, height, width));
    }

    /// <summary>Writes RGB HWC bytes as a PNG file (written to a temporary file and renamed).</summary>
    public static void WritePng(string path, byte[] rgb, int height, int width) => WriteAtomic(path, EncodePng(rgb, height, width));

    internal static byte[] EncodePng(byte[] rgb, int height, int width)
    {
        CheckSize(rgb.Length, height, width, 3);
        return PngWriter.EncodeRgb(rgb, height, width);
    }

    /// <summary>Writes RGB HWC bytes as a JPEG file of the given quality (1-100).</summary>
    public static void WriteJpeg(string path, byte[] rgb, int height, int width, int quality = 90) =>
        WriteAtomic(path, EncodeJpeg(rgb, height, width, quality));

    internal static byte[] EncodeJpeg(byte[] rgb, int height, int width, int quality = 90)
    {
        CheckSize(rgb.Length, height, width, 3);
        return SkiaCodec.EncodeJpeg(rgb, height, width, quality);
    }

    /// <summary>Bilinear resize of HWC uint8 pixels (half-pixel centres, like align_corners=False; no antialiasing).</summary>
    internal static byte[] ResizeBilinear(byte[] src, int height, int width, int channels, int outHeight, int outWidth)
    {
        CheckSize(src.Length, height, width, channels);
        if (outHeight <= 0 || outWidth <= 0) throw new ArgumentException("resize: sizes must be positive");
        var dst = new byte[checked(outHeight * outWidth * channels)];
        ImageKernels.ResizeBilinear(src, height, width, channels, dst, outHeight, outWidth);
        return dst;
    }

    /// <summary>Nearest-neighbour resize of a single-channel map (masks).</summary>
    internal static byte[] ResizeNearest(byte[] src, int height, int width, int outHeight, int outWidth)
    {
        CheckSize(src.Length, height, width, 1);
        if (outHeight <= 0 || outWidth <= 0) throw new ArgumentException("resize: sizes must be positive");
        var dst = new byte[checked(outHeight * outWidth)];
        ImageKernels.ResizeNearest(src, height, width, dst, outHeight, outWidth);
        return dst;
    }

    internal static byte[] ReadFile(string path)
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (FileNotFoundException)
        {
            throw new DataException(path, "file not found");
        }
        catch (DirectoryNotFoundException)
        {
            throw new DataException(path, "file not found (its folder does not exist)");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DataException(path, "cannot read: " + e.Message, e);
        }
    }

    private static void CheckSize(int length, int height, int width, int channels)
    {
        if (height <= 0 || width <= 0) throw new ArgumentException($"image size {height}x{width} must be positive");
        if ((long)height * width * channels != length)
            throw new ArgumentException($"{length} bytes do not hold a {height}x{width}x{channels} image");
    }

    /// <summary>Writes through a temporary file and a rename, so readers never see half a file.</summary>
    internal static void WriteAtomic(string path, byte[] bytes)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, "." + Path.GetFileName(path) + "." + Environment.ProcessId + "." + Environment.CurrentManagedThreadId + ".tmp");
        File.WriteAllBytes(tmp, bytes);
        File.Move(tmp, path, overwrite: true);
    }
}
