using DeepLabTorch.Data;
using DeepLabTorch.Inference;

namespace DeepLabTorch.Export.Quantization;

/// <summary>
/// The calibration folder: its images (.jpg, .jpeg, .png, not recursing) in ordinal file-name order, the first
/// <c>count</c> of them, so the same folder always calibrates alike. Each is decoded as predict decodes it (RGB, no
/// resize); every problem is a UserException naming the folder or the file.
/// </summary>
internal sealed class CalibrationImages
{
    public IReadOnlyList<string> Files { get; }

    public CalibrationImages(string folder, int count)
    {
        if (count < 1) throw new UserException($"--calibration-count must be >= 1, got {count}");
        if (!Directory.Exists(folder)) throw new UserException($"--calibration {folder}: no such folder");
        List<string> files;
        try
        {
            files = Directory.EnumerateFiles(folder).Where(InputFiles.IsImage).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserException($"--calibration {folder}: cannot list the folder: {e.Message}", e);
        }
        if (files.Count == 0)
            throw new UserException($"--calibration {folder}: the folder holds no images ({string.Join(", ", InputFiles.ImageExtensions)})");
        files.Sort(StringComparer.Ordinal);
        Files = files.Take(count).ToList();
    }

    /// <summary>One image as RGB HWC bytes; a file that cannot be read or decoded is a UserException naming it.</summary>
    public static (byte[] Rgb, int Height, int Width) Decode(string file)
    {
        try
        {
            return ImageCodec.DecodeImage(file);
        }
        catch (DataException e)
        {
            throw new UserException($"--calibration: {e.Path}: not a readable image: {e.Reason}", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserException($"--calibration: {file}: not a readable image: {e.Message}", e);
        }
    }
}
