namespace DeepLabTorch.Data;

/// <summary>
/// JPEG (libjpeg-turbo) and PNG (libpng) through the native layer. Decoding writes straight into the
/// returned array; every failure is a <see cref="DataException"/> naming the file and the reason.
/// </summary>
public static unsafe class ImageCodec
{
    /// <summary>Decodes a JPEG or PNG file to RGB HWC bytes. Gray, palette, alpha (dropped) and 16-bit PNGs are converted.</summary>
    public static (byte[] Rgb, int Height, int Width) DecodeImage(string path) => DecodeImage(path, ReadFile(path));

    /// <summary>Decodes an in-memory JPEG or PNG; <paramref name="name"/> is used in error messages.</summary>
    public static (byte[] Rgb, int Height, int Width) DecodeImage(string name, ReadOnlySpan<byte> data)
    {
        var (h, w) = Probe(name, data);
        var rgb = GC.AllocateUninitializedArray<byte>(checked(h * w * 3));
        fixed (byte* src = data)
        fixed (byte* dst = rgb)
        {
            if (NativeImage.dlt_image_decode_rgb(src, data.Length, dst, rgb.Length) == 0)
                throw new DataException(name, NativeImage.TakeError());
        }
        return (rgb, h, w);
    }

    /// <summary>
    /// Decodes a class mask: palette PNG → palette indices (not colours); gray PNG → values (16-bit
    /// only when they fit a byte); RGB PNG → gray level when every pixel is gray, else the VOC colour's index.
    /// </summary>
    public static (byte[] Indices, int Height, int Width) DecodeMask(string path) => DecodeMask(path, ReadFile(path));

    public static (byte[] Indices, int Height, int Width) DecodeMask(string name, ReadOnlySpan<byte> data)
    {
        var (h, w) = Probe(name, data);
        var mask = GC.AllocateUninitializedArray<byte>(checked(h * w));
        fixed (byte* src = data)
        fixed (byte* dst = mask)
        {
            if (NativeImage.dlt_image_decode_mask(src, data.Length, dst, mask.Length) == 0)
                throw new DataException(name, NativeImage.TakeError());
        }
        return (mask, h, w);
    }

    /// <summary>Height and width from the header only.</summary>
    public static (int Height, int Width) Probe(string name, ReadOnlySpan<byte> data)
    {
        fixed (byte* src = data)
        {
            if (NativeImage.dlt_image_probe(src, data.Length, out _, out int h, out int w) == 0)
                throw new DataException(name, NativeImage.TakeError());
            return (h, w);
        }
    }

    /// <summary>Writes class indices as an 8-bit palette PNG (the VOC colour map unless a palette is given).</summary>
    public static void WritePalettePng(string path, byte[] indices, int height, int width, byte[]? palette = null) =>
        WriteAtomic(path, EncodePalettePng(indices, height, width, palette));

    public static byte[] EncodePalettePng(byte[] indices, int height, int width, byte[]? palette = null)
    {
        CheckSize(indices.Length, height, width, 1);
        if (palette != null && (palette.Length % 3 != 0 || palette.Length < 3 || palette.Length > 768))
            throw new ArgumentException("a palette is 1 to 256 RGB triples", nameof(palette));
        fixed (byte* px = indices)
        fixed (byte* pal = palette)
            return NativeImage.TakeBuffer(NativeImage.dlt_image_encode_png(px, height, width, 2, pal, palette == null ? 0 : palette.Length / 3), "PNG encoding");
    }

    /// <summary>Writes an 8-bit grayscale PNG (for example 0/255 portrait masks).</summary>
    public static void WriteGrayPng(string path, byte[] values, int height, int width)
    {
        CheckSize(values.Length, height, width, 1);
        fixed (byte* px = values)
            WriteAtomic(path, NativeImage.TakeBuffer(NativeImage.dlt_image_encode_png(px, height, width, 1, null, 0), "PNG encoding"));
    }

    public static void WritePng(string path, byte[] rgb, int height, int width) => WriteAtomic(path, EncodePng(rgb, height, width));

    public static byte[] EncodePng(byte[] rgb, int height, int width)
    {
        CheckSize(rgb.Length, height, width, 3);
        fixed (byte* px = rgb)
            return NativeImage.TakeBuffer(NativeImage.dlt_image_encode_png(px, height, width, 3, null, 0), "PNG encoding");
    }

    public static void WriteJpeg(string path, byte[] rgb, int height, int width, int quality = 90) =>
        WriteAtomic(path, EncodeJpeg(rgb, height, width, quality));

    public static byte[] EncodeJpeg(byte[] rgb, int height, int width, int quality = 90)
    {
        CheckSize(rgb.Length, height, width, 3);
        fixed (byte* px = rgb)
            return NativeImage.TakeBuffer(NativeImage.dlt_image_encode_jpeg(px, height, width, quality), "JPEG encoding");
    }

    /// <summary>Bilinear resize of HWC uint8 pixels (half-pixel centres, like align_corners=False; no antialiasing).</summary>
    public static byte[] ResizeBilinear(byte[] src, int height, int width, int channels, int outHeight, int outWidth)
    {
        CheckSize(src.Length, height, width, channels);
        var dst = new byte[checked(outHeight * outWidth * channels)];
        fixed (byte* s = src)
        fixed (byte* d = dst)
            if (NativeImage.dlt_image_resize_bilinear(s, height, width, channels, d, outHeight, outWidth) == 0)
                throw new ArgumentException(NativeImage.TakeError());
        return dst;
    }

    /// <summary>Nearest-neighbour resize of a single-channel map (masks).</summary>
    public static byte[] ResizeNearest(byte[] src, int height, int width, int outHeight, int outWidth)
    {
        CheckSize(src.Length, height, width, 1);
        var dst = new byte[checked(outHeight * outWidth)];
        fixed (byte* s = src)
        fixed (byte* d = dst)
            if (NativeImage.dlt_image_resize_nearest(s, height, width, d, outHeight, outWidth) == 0)
                throw new ArgumentException(NativeImage.TakeError());
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
