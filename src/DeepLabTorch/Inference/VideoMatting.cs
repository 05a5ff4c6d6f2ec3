using DeepLabTorch.Runtime;

namespace DeepLabTorch.Inference;

/// <summary>The outcome of a video run.</summary>
internal sealed record VideoResult(long Frames, TimeSpan Elapsed, VideoInfo Info)
{
    public double Fps => Frames / Math.Max(1e-9, Elapsed.TotalSeconds);
}

/// <summary>
/// Background replacement over a whole video: one ffmpeg decoding to raw rgb24 on a pipe, one encoding
/// from a pipe (with the input's audio copied), and the Matter in between, frame by frame.
/// </summary>
internal static class VideoMatting
{
    /// <param name="progress">Told after each frame how many are done (label: the input's file name, unit "frames").</param>
    public static VideoResult Run(string input, string output, Matter matter, BackgroundRenderer background, IProgress<ProgressReport>? progress = null,
        CancellationToken ct = default, string? searchPath = null)
    {
        var info = Ffmpeg.Probe(input, searchPath);
        if (Path.GetFullPath(input) == Path.GetFullPath(output))
            throw new UserException($"{output}: the output would overwrite the input video");
        matter.Reset();
        using var reader = new VideoReader(input, info, searchPath);
        using var writer = VideoWriter.Open(output, info, info.HasAudio ? input : null, searchPath);
        var frame = new byte[reader.FrameBytes];
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var label = Path.GetFileName(input);
        long frames = 0;
        try
        {
            while (reader.Read(frame))
            {
                ct.ThrowIfCancellationRequested();
                var composed = matter.Process(frame, info.Height, info.Width, background);
                writer.Write(composed);
                frames++;
                progress?.Report(new ProgressReport(label, frames, info.FrameCount, "frames", clock.Elapsed));
            }
            writer.Finish();
        }
        finally
        {
            progress?.Report(new ProgressReport(label, frames, info.FrameCount, "frames", clock.Elapsed) { Final = true });
        }
        return new VideoResult(frames, clock.Elapsed, info);
    }
}
