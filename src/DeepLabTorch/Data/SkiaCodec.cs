using System.Runtime.Intrinsics;
using SkiaSharp;

namespace DeepLabTorch.Data;

/// <summary>
/// Photos through SkiaSharp: JPEG, PNG, BMP and WebP to RGB; RGB to JPEG. Anything but a complete decode is an
/// error naming the file (Skia reports a truncated JPEG as incomplete input and fills the rest: we refuse it).
/// EXIF orientation is not applied, as before: pixels come in stored order, matching the masks drawn on them.
/// </summary>
internal static unsafe class SkiaCodec
{
    public static bool IsJpeg(ReadOnlySpan<byte> d) => d.Length >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF;

    /// <summary>The format a file claims by its first bytes (for error messages when Skia cannot open it).</summary>
    private static string? FormatBySignature(ReadOnlySpan<byte> d)
    {
        if (IsJpeg(d)) return "JPEG";
        if (Png.PngReader.IsPng(d)) return "PNG";
        if (d.Length >= 12 && d[..4].SequenceEqual("RIFF"u8) && d.Slice(8, 4).SequenceEqual("WEBP"u8)) return "WEBP";
        if (d.Length >= 2 && d[0] == (byte)'B' && d[1] == (byte)'M') return "BMP";
        if (d.Length >= 4 && d[..4].SequenceEqual("GIF8"u8)) return "GIF";
        return null;
    }

    /// <summary>Height and width from the header; the codec reads no pixels.</summary>
    public static (int Height, int Width) Probe(string name, ReadOnlySpan<byte> data)
    {
        using var codec = Open(name, data, out var keep);
        using var source = keep;
        return (codec.Info.Height, codec.Info.Width);
    }

    /// <summary>Decodes to RGB HWC; alpha is dropped (not composited), gray and palette images are expanded.</summary>
    public static (byte[] Rgb, int Height, int Width) DecodeRgb(string name, ReadOnlySpan<byte> data)
    {
        using var codec = Open(name, data, out var keep);
        using var source = keep;
        int h = codec.Info.Height, w = codec.Info.Width;
        var rgba = DecodeToScratch(name, codec);
        var rgb = GC.AllocateUninitializedArray<byte>(h * w * 3);
        PackRgb(rgba, rgb);
        return (rgb, h, w);
    }

    /// <summary>Decodes to one byte per pixel: the stored gray of a gray file, else the Rec.601 luma of its colours.</summary>
    public static (byte[] Gray, int Height, int Width) DecodeGray(string name, ReadOnlySpan<byte> data)
    {
        using var codec = Open(name, data, out var keep);
        using var source = keep;
        int h = codec.Info.Height, w = codec.Info.Width;
        if (codec.Info.ColorType == SKColorType.Gray8)
        {
            var stored = GC.AllocateUninitializedArray<byte>(h * w);
            Decode(name, codec, SKColorType.Gray8, stored);
            return (stored, h, w);
        }
        var rgba = DecodeToScratch(name, codec);
        var gray = GC.AllocateUninitializedArray<byte>(h * w);
        // libjpeg's fixed-point weights (16-bit fractions of 0.299, 0.587, 0.114), rounded.
        for (int i = 0; i < gray.Length; i++)
            gray[i] = (byte)((19595 * rgba[4 * i] + 38470 * rgba[4 * i + 1] + 7471 * rgba[4 * i + 2] + 32768) >> 16);
        return (gray, h, w);
    }

    public static byte[] EncodeJpeg(ReadOnlySpan<byte> rgb, int height, int width, int quality)
    {
        if (quality < 1 || quality > 100) throw new ArgumentException("JPEG quality must be 1-100");
        var rgba = new byte[height * width * 4];
        for (int i = 0, n = height * width; i < n; i++)
        {
            rgba[4 * i] = rgb[3 * i];
            rgba[4 * i + 1] = rgb[3 * i + 1];
            rgba[4 * i + 2] = rgb[3 * i + 2];
            rgba[4 * i + 3] = 255;
        }
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        fixed (byte* p = rgba)
        {
            using var pixmap = new SKPixmap(info, (IntPtr)p, width * 4);
            using var data = pixmap.Encode(new SKJpegEncoderOptions(quality, SKJpegEncoderDownsample.Downsample420, SKJpegEncoderAlphaOption.Ignore))
                ?? throw new InvalidOperationException("JPEG encoding failed");
            return data.ToArray();
        }
    }

    // The codec reads from an SKData copy of the bytes, returned in keep for the caller to dispose after the codec.
    private static SKCodec Open(string name, ReadOnlySpan<byte> data, out SKData keep)
    {
        if (data.IsEmpty) throw new DataException(name, "the file is empty");
        keep = SKData.CreateCopy(data);
        var codec = SKCodec.Create(keep);
        if (codec == null)
        {
            keep.Dispose();
            string? format = FormatBySignature(data);
            throw new DataException(name, format != null ? $"corrupt or truncated {format} (unreadable header)"
                : "not a JPEG, PNG, BMP or WebP file (unknown signature)");
        }
        var (h, w) = (codec.Info.Height, codec.Info.Width);
        if (h <= 0 || w <= 0 || h > Png.PngReader.MaxSide || w > Png.PngReader.MaxSide)
        {
            codec.Dispose();
            throw new DataException(name, $"implausible image size {w}x{h}");
        }
        return codec;
    }

    // The RGBA intermediate lives in a per-thread buffer: a fresh large-object array per image would keep the GC busy.
    [ThreadStatic] private static byte[]? _scratch;

    private static ReadOnlySpan<byte> DecodeToScratch(string name, SKCodec codec)
    {
        int size = codec.Info.Width * codec.Info.Height * 4;
        if (_scratch == null || _scratch.Length < size) _scratch = GC.AllocateUninitializedArray<byte>(size);
        var pixels = _scratch.AsSpan(0, size);
        Decode(name, codec, SKColorType.Rgba8888, pixels);
        return pixels;
    }

    private static void Decode(string name, SKCodec codec, SKColorType type, Span<byte> pixels)
    {
        // No colour space on the destination: Skia hands out the stored values, unconverted.
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, type, SKAlphaType.Unpremul);
        if (pixels.Length != info.BytesSize) throw new InvalidOperationException("decode buffer of the wrong size");
        SKCodecResult result;
        fixed (byte* p = pixels) result = codec.GetPixels(info, (IntPtr)p);
        if (result != SKCodecResult.Success)
        {
            string format = codec.EncodedFormat.ToString().ToUpperInvariant();
            throw new DataException(name, result == SKCodecResult.IncompleteInput
                ? $"truncated {format} (the data ends before the last pixel)"
                : $"corrupt {format} ({result})");
        }
    }

    // Skia has no 3-byte pixel format: drop every fourth byte, four pixels per shuffle where the CPU has one.
    private static void PackRgb(ReadOnlySpan<byte> rgba, Span<byte> rgb)
    {
        int i = 0, n = rgb.Length / 3;
        if (Vector128.IsHardwareAccelerated)
        {
            var drop = Vector128.Create((byte)0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 0, 0, 0, 0);
            // Each store writes 16 bytes of which 12 count: stop while 4 spare bytes remain.
            for (; 3 * i + 16 <= rgb.Length; i += 4)
                Vector128.Shuffle(Vector128.Create(rgba.Slice(4 * i, 16)), drop).CopyTo(rgb[(3 * i)..]);
        }
        for (; i < n; i++)
        {
            rgb[3 * i] = rgba[4 * i];
            rgb[3 * i + 1] = rgba[4 * i + 1];
            rgb[3 * i + 2] = rgba[4 * i + 2];
        }
    }
}
