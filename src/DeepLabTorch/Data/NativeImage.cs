using System.Runtime.InteropServices;
using System.Text;

namespace DeepLabTorch.Data;

// The image area of the flat C API (src/Native/image.cpp): codecs and the augmentation kernel.
// Functions return 1 / a handle on success, 0 / null on failure with the reason in the error slot.
internal static unsafe class NativeImage
{
    private const string Lib = "deeplabtorch_native";

    [DllImport(Lib)] internal static extern int dlt_last_error(byte* buffer, int capacity);
    [DllImport(Lib)] internal static extern int dlt_image_probe(byte* data, long len, out int format, out int height, out int width);
    [DllImport(Lib)] internal static extern int dlt_image_decode_rgb(byte* data, long len, byte* output, long capacity);
    [DllImport(Lib)] internal static extern int dlt_image_decode_mask(byte* data, long len, byte* output, long capacity);
    [DllImport(Lib)] internal static extern IntPtr dlt_image_encode_png(byte* pixels, int height, int width, int mode, byte* palette, int paletteLength);
    [DllImport(Lib)] internal static extern IntPtr dlt_image_encode_jpeg(byte* rgb, int height, int width, int quality);
    [DllImport(Lib)] internal static extern long dlt_image_buffer_size(IntPtr handle);
    [DllImport(Lib)] internal static extern byte* dlt_image_buffer_data(IntPtr handle);
    [DllImport(Lib)] internal static extern void dlt_image_buffer_free(IntPtr handle);
    [DllImport(Lib)] internal static extern void dlt_image_voc_palette(byte* output);
    [DllImport(Lib)] internal static extern int dlt_image_resize_bilinear(byte* src, int h, int w, int c, byte* dst, int oh, int ow);
    [DllImport(Lib)] internal static extern int dlt_image_resize_nearest(byte* src, int h, int w, byte* dst, int oh, int ow);
    [DllImport(Lib)] internal static extern int dlt_image_augment(byte* image, byte* mask, int h, int w,
        int scaledH, int scaledW, int cropY, int cropX, int outH, int outW, int flip, float blurSigma,
        float* mean, float* std, byte* padRgb, int padMask, float* outImage, long* outMask);

    /// <summary>Takes this thread's pending native error message.</summary>
    internal static string TakeError()
    {
        int len = dlt_last_error(null, 0);
        if (len <= 0) return "native image call failed without a message";
        var buf = new byte[len + 1];
        fixed (byte* p = buf) dlt_last_error(p, buf.Length);
        return Encoding.UTF8.GetString(buf, 0, len);
    }

    /// <summary>Copies an encoded buffer out and frees it.</summary>
    internal static byte[] TakeBuffer(IntPtr handle, string what)
    {
        if (handle == IntPtr.Zero) throw new InvalidOperationException($"{what}: {TakeError()}");
        try
        {
            var bytes = new byte[dlt_image_buffer_size(handle)];
            new ReadOnlySpan<byte>(dlt_image_buffer_data(handle), bytes.Length).CopyTo(bytes);
            return bytes;
        }
        finally
        {
            dlt_image_buffer_free(handle);
        }
    }
}
