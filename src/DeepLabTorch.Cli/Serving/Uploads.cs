using DeepLabTorch.Data;
using Microsoft.AspNetCore.Http;

namespace DeepLabTorch.Cli.Serving;

/// <summary>A request that cannot be served: its status and the reason, answered as JSON.</summary>
internal sealed class HttpError(int status, string message) : Exception(message)
{
    public int Status { get; } = status;
    public TimeSpan? RetryAfter { get; init; }
}

/// <summary>A decoded upload: RGB bytes HWC.</summary>
internal sealed record Upload(byte[] Rgb, int Height, int Width);

/// <summary>
/// Reads images from a request: the raw body, or a multipart form field. The body-size limit is Kestrel's, so an
/// upload over it is refused while it streams; the pixel limit is checked on the header before decoding.
/// </summary>
internal static class Uploads
{
    /// <summary>The form field (multipart) or the raw body (anything else); null when a multipart form lacks the field.</summary>
    public static async Task<byte[]?> ReadBytesAsync(HttpRequest request, string field, bool required, CancellationToken ct)
    {
        try
        {
            if (IsMultipart(request))
            {
                var form = await request.ReadFormAsync(ct);
                var file = form.Files.GetFile(field);
                if (file is null)
                {
                    if (!required) return null;
                    var names = string.Join(", ", form.Files.Select(f => f.Name));
                    throw new HttpError(400, $"the form has no file field '{field}'" + (names.Length > 0 ? $" (it has: {names})" : ""));
                }
                using var ms = new MemoryStream((int)Math.Min(file.Length, int.MaxValue));
                await file.CopyToAsync(ms, ct);
                return ms.ToArray();
            }
            using var body = new MemoryStream();
            await request.Body.CopyToAsync(body, ct);
            return body.ToArray();
        }
        catch (BadHttpRequestException e)
        {
            throw new HttpError(e.StatusCode, e.StatusCode == 413 ? "the upload is larger than the server's limit (--max-upload-mb)" : e.Message);
        }
        catch (InvalidDataException e)
        {
            // Multipart parsing: a part over the form limits, or a malformed form.
            throw new HttpError(e.Message.Contains("limit", StringComparison.OrdinalIgnoreCase) ? 413 : 400, $"the multipart form cannot be read: {e.Message}");
        }
    }

    /// <summary>Only multipart/form-data is a form here: any other body, whatever its declared type, is the image itself.</summary>
    public static bool IsMultipart(HttpRequest request) =>
        request.ContentType?.StartsWith("multipart/form-data", StringComparison.OrdinalIgnoreCase) == true;

    /// <summary>Probes the header (415 when it is no image we read, 413 over the pixel limit), then decodes (400 when broken).</summary>
    public static Upload Decode(byte[] data, string what, long maxPixels)
    {
        if (data.Length == 0) throw new HttpError(400, $"the {what} is empty: send a JPEG, PNG, WebP or BMP image as the body or as a multipart file");
        int h, w;
        try
        {
            (h, w) = ImageCodec.Probe(what, data);
        }
        catch (Exception e) when (e is DataException or UserException)
        {
            throw new HttpError(415, $"the {what} is not an image this server reads (JPEG, PNG, WebP, BMP): {Reason(e)}");
        }
        if ((long)h * w > maxPixels)
            throw new HttpError(413, $"the {what} is {w}x{h} = {(long)h * w} pixels, more than the server's limit of {maxPixels} (--max-pixels)");
        try
        {
            var (rgb, dh, dw) = ImageCodec.DecodeImage(what, data);
            return new Upload(rgb, dh, dw);
        }
        catch (Exception e) when (e is DataException or UserException)
        {
            throw new HttpError(400, $"the {what} cannot be decoded: {Reason(e)}");
        }
    }

    private static string Reason(Exception e) => e is DataException d ? d.Reason : e.Message;
}
