using System.Text.Json;
using DeepLabTorch.Inference;
using DeepLabTorch.Extensions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using static DeepLabTorch.Tests.Inference.InferenceTestUtil;

namespace DeepLabTorch.Tests.Inference;

public class VideoTests
{
    /// <summary>1 s of ffmpeg's test pattern at 64x48, 10 fps, with a sine tone as AAC audio.</summary>
    internal static string MakeTestVideo(string dir, string name = "in.mp4", bool audio = true, string audioCodec = "aac")
    {
        var path = Path.Combine(dir, name);
        var args = new List<string> { "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10" };
        if (audio) args.AddRange(new[] { "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000" });
        args.AddRange(new[] { "-t", "1", "-c:v", "libx264", "-pix_fmt", "yuv420p" });
        if (audio) args.AddRange(new[] { "-c:a", audioCodec });
        args.Add(path);
        var (code, _, err) = Ffmpeg.RunToEnd(Ffmpeg.Find("ffmpeg"), args);
        Assert.True(code == 0, "ffmpeg could not make the test video: " + err);
        return path;
    }

    /// <summary>(video frames counted by decoding, width, height, number of audio streams) from ffprobe.</summary>
    internal static (long Frames, int Width, int Height, int AudioStreams) Describe(string path)
    {
        var (code, json, err) = Ffmpeg.RunToEnd(Ffmpeg.Find("ffprobe"),
            new[] { "-v", "error", "-count_frames", "-print_format", "json", "-show_streams", path });
        Assert.True(code == 0, "ffprobe failed: " + err);
        using var doc = JsonDocument.Parse(json);
        long frames = 0; int w = 0, h = 0, audio = 0;
        foreach (var s in doc.RootElement.GetProperty("streams").EnumerateArray())
        {
            var type = s.GetProperty("codec_type").GetString();
            if (type == "audio") audio++;
            if (type == "video")
            {
                frames = long.Parse(s.GetProperty("nb_read_frames").GetString()!);
                w = s.GetProperty("width").GetInt32();
                h = s.GetProperty("height").GetInt32();
            }
        }
        return (frames, w, h, audio);
    }

    private static Matter PortraitMatter(nn.Module<Tensor, Tensor> net, double smoothing = 0) =>
        new(new Predictor(net), new MatteOptions { Smoothing = smoothing });

    [LinuxFact(LinuxOnly.Ffmpeg)]
    public void MattedVideoKeepsFrameCountSizeAndAudio()
    {
        var dir = TempDir("video");
        try
        {
            var input = MakeTestVideo(dir);
            var before = Describe(input);
            Assert.Equal((10L, 64, 48, 1), before);
            using var net = new TinyNet(2);
            using var matter = PortraitMatter(net, smoothing: 0.5);
            using var bg = new BackgroundRenderer(new Background.Colour(0, 0, 255), _ => throw new InvalidOperationException());
            var output = Path.Combine(dir, "out.mp4");
            var progress = new ProgressRecorder();
            var result = VideoMatting.Run(input, output, matter, bg, progress);
            Assert.Equal(10, result.Frames);
            Assert.Equal(before, Describe(output));
            // A report per frame, counted in frames out of the probed 10, then the final one.
            var reports = progress.Reports;
            Assert.Equal(Enumerable.Range(1, 10).Select(i => (long)i).Append(10), reports.Select(r => r.Done));
            Assert.All(reports, r => Assert.Equal(("in.mp4", 10L, "frames"), (r.Label, r.Total ?? -1, r.Unit)));
            Assert.True(reports[^1].Final);
            Assert.DoesNotContain(reports.SkipLast(1), r => r.Final);
            Assert.Contains("frames/s", DeepLabTorch.Cli.Progress.ConsoleProgress.Format(reports[^1]));
            Assert.Empty(Directory.GetFiles(dir, ".*part*")); // the temporary file was renamed
        }
        finally { Directory.Delete(dir, true); }
    }

    [LinuxFact(LinuxOnly.Ffmpeg)]
    public void VideoWithoutAudioStaysSilentAndFramesRoundTrip()
    {
        var dir = TempDir("video-silent");
        try
        {
            var input = MakeTestVideo(dir, audio: false);
            var info = Ffmpeg.Probe(input);
            Assert.False(info.HasAudio);
            Assert.Equal(10.0, info.Fps, 6);
            // A hard mask everywhere = the frame itself: decoded frames re-encoded must look like the input.
            using var l = full(new long[] { 1, 2, 48, 64 }, 0.0);
            using var personRow = l.narrow(1, 1, 1).fill_(30);
            using var net = new FixedLogitsNet(l);
            using var matter = new Matter(new Predictor(net), new MatteOptions { EdgeRadius = 0 });
            using var bg = new BackgroundRenderer(new Background.Colour(255, 0, 0), _ => throw new InvalidOperationException());
            var output = Path.Combine(dir, "out.mp4");
            VideoMatting.Run(input, output, matter, bg);
            var after = Describe(output);
            Assert.Equal((10L, 64, 48, 0), after);
            using var a = new VideoReader(input, info);
            using var b = new VideoReader(output, Ffmpeg.Probe(output));
            var fa = new byte[a.FrameBytes];
            var fb = new byte[b.FrameBytes];
            Assert.True(a.Read(fa) && b.Read(fb));
            double meanAbs = fa.Zip(fb, (x, y) => Math.Abs(x - y)).Average();
            Assert.True(meanAbs < 8, $"first frame differs by {meanAbs} on average (lossy codec, but not red)");
        }
        finally { Directory.Delete(dir, true); }
    }

    [LinuxFact(LinuxOnly.Ffmpeg)]
    public void PcmAudioThatMp4CannotHoldIsReencoded()
    {
        var dir = TempDir("video-pcm");
        try
        {
            var input = MakeTestVideo(dir, "in.avi", audio: true, audioCodec: "pcm_s16le");
            Assert.Equal("pcm_s16le", Ffmpeg.Probe(input).AudioCodec);
            Assert.False(VideoWriter.AudioCanBeCopied("pcm_s16le", "out.mp4"));
            Assert.True(VideoWriter.AudioCanBeCopied("pcm_s16le", "out.mkv"));
            using var net = new TinyNet(2);
            using var matter = PortraitMatter(net);
            using var bg = new BackgroundRenderer(new Background.Blur(2), _ => throw new InvalidOperationException());
            var output = Path.Combine(dir, "out.mp4");
            VideoMatting.Run(input, output, matter, bg);
            Assert.Equal((10L, 64, 48, 1), Describe(output));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void MissingFfmpegSaysHowToInstallIt()
    {
        var empty = TempDir("nopath");
        try
        {
            var e = Assert.Throws<UserException>(() => Ffmpeg.Find("ffmpeg", empty));
            Assert.Contains("apt-get install ffmpeg", e.Message);
            var file = Path.Combine(empty, "x.mp4");
            File.WriteAllBytes(file, new byte[] { 1, 2, 3 });
            var e2 = Assert.Throws<UserException>(() => Ffmpeg.Probe(file, empty));
            Assert.Contains("apt-get install ffmpeg", e2.Message);
        }
        finally { Directory.Delete(empty, true); }
    }

    [LinuxFact(LinuxOnly.Ffmpeg)]
    public void BrokenVideoIsADataErrorNamingTheFile()
    {
        var dir = TempDir("badvideo");
        try
        {
            var file = Path.Combine(dir, "broken.mp4");
            File.WriteAllBytes(file, new byte[] { 0, 0, 0, 24, (byte)'f', (byte)'t', (byte)'y', (byte)'p', 9, 9, 9 });
            var e = Assert.Throws<DeepLabTorch.Data.DataException>(() => Ffmpeg.Probe(file));
            Assert.Contains("broken.mp4", e.Message);
            Assert.Throws<UserException>(() => Ffmpeg.Probe(Path.Combine(dir, "absent.mp4")));
        }
        finally { Directory.Delete(dir, true); }
    }
}
