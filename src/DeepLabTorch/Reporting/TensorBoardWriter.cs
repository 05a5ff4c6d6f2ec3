using TorchSharp;
using TbWriter = TorchSharp.Modules.SummaryWriter;

namespace DeepLabTorch.Reporting;

/// <summary>
/// The training run's TensorBoard event file, written by TorchSharp's SummaryWriter (TFRecord framing,
/// CRC-32C and the Event protobuf are TorchSharp's). This class keeps the small API the trainer uses:
/// double values and long steps, PNG images we encoded ourselves, the file's path, and one lock, since
/// SummaryWriter opens the file for every event and is not meant to be called from two threads at once.
/// </summary>
internal sealed class TensorBoardWriter : IDisposable
{
    private readonly TbWriter _writer;
    private readonly object _lock = new();

    public TensorBoardWriter(string logDir)
    {
        // SummaryWriter names its file events.out.tfevents.<ticks>.<host>.<pid>.<n>[.<suffix>] and does not
        // say which it chose; a suffix unique to this writer lets us find it again.
        var suffix = "dl" + Guid.NewGuid().ToString("N")[..8];
        _writer = torch.utils.tensorboard.SummaryWriter(logDir, filename_suffix: suffix);
        FilePath = Directory.EnumerateFiles(logDir, "events.out.tfevents.*." + suffix).Single();
    }

    public string FilePath { get; }

    public void AddScalar(string tag, double value, long step)
    {
        lock (_lock) _writer.add_scalar(tag, (float)value, Step(step));
    }

    /// <summary>
    /// An image already encoded as PNG. SummaryWriter takes images as tensors or files only: the PNG goes
    /// through a temporary file, which SummaryWriter decodes and re-encodes (RGBA, colorspace 4) with
    /// SkiaSharp. The tensor route would need libtorch ops with implicit Scalar temporaries inside
    /// TorchSharp (see Models/BatchNorm.cs for why we avoid them while loader threads run).
    /// </summary>
    public void AddImage(string tag, byte[] png, int height, int width, long step)
    {
        var tmp = Path.Combine(Path.GetTempPath(), $"dlt-tb-{Guid.NewGuid():N}.png");
        try
        {
            File.WriteAllBytes(tmp, png);
            lock (_lock) _writer.add_img(tag, tmp, Step(step));
        }
        finally
        {
            File.Delete(tmp);
        }
    }

    /// <summary>SummaryWriter's steps are int; a run never gets near 2^31 iterations, but say so if it does.</summary>
    private static int Step(long step) => step is >= 0 and <= int.MaxValue
        ? (int)step
        : throw new ArgumentOutOfRangeException(nameof(step), step, "TensorBoard steps must lie in 0..2^31-1");

    /// <summary>SummaryWriter flushes every event to the file itself.</summary>
    public void Flush() { }

    /// <summary>SummaryWriter holds no open file between events; nothing to release.</summary>
    public void Dispose() { }
}
