using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace DeepLabTorch.Inference;

/// <summary>What ffprobe says about a video's first video stream.</summary>
internal sealed record VideoInfo(int Width, int Height, string FrameRate, long? FrameCount, bool HasAudio, string? AudioCodec = null)
{
    /// <summary>Frames per second as a number (FrameRate is ffmpeg's rational, e.g. "30000/1001").</summary>
    public double Fps
    {
        get
        {
            var parts = FrameRate.Split('/');
            double num = double.Parse(parts[0], CultureInfo.InvariantCulture);
            double den = parts.Length > 1 ? double.Parse(parts[1], CultureInfo.InvariantCulture) : 1;
            return den == 0 ? 0 : num / den;
        }
    }
}

/// <summary>Finding and running Debian's ffmpeg and ffprobe.</summary>
internal static class Ffmpeg
{
    public const string InstallHint = "install it with: sudo apt-get install ffmpeg";

    /// <summary>Video file extensions that matte and predict treat as video rather than as images.</summary>
    public static readonly IReadOnlySet<string> VideoExtensions = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
    {
        ".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv",
    };

    public static bool IsVideo(string path) => VideoExtensions.Contains(Path.GetExtension(path));

    /// <summary>
    /// The full path of tool ("ffmpeg" or "ffprobe") on searchPath (default $PATH), or a UserException
    /// that says how to install it. $DEEPLAB_FFMPEG_DIR, when set, is searched first.
    /// </summary>
    public static string Find(string tool, string? searchPath = null)
    {
        var dirs = new List<string>();
        var over = Environment.GetEnvironmentVariable("DEEPLAB_FFMPEG_DIR");
        if (searchPath is null && !string.IsNullOrEmpty(over)) dirs.Add(over);
        dirs.AddRange((searchPath ?? Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        foreach (var d in dirs)
        {
            var p = Path.Combine(d, tool);
            if (File.Exists(p)) return p;
            if (OperatingSystem.IsWindows() && File.Exists(p + ".exe")) return p + ".exe";
        }
        throw new UserException($"{tool} was not found on PATH; video needs ffmpeg: {InstallHint}");
    }

    /// <summary>Width, height, frame rate, frame count (when the container knows it) and whether there is audio.</summary>
    public static VideoInfo Probe(string path, string? searchPath = null)
    {
        if (!File.Exists(path)) throw new UserException($"{path}: no such video file");
        var ffprobe = Find("ffprobe", searchPath);
        var (code, stdout, stderr) = RunToEnd(ffprobe, new[] { "-v", "error", "-print_format", "json", "-show_streams", path });
        if (code != 0) throw new Data.DataException(path, "ffprobe cannot read it: " + LastLine(stderr));
        try
        {
            using var doc = JsonDocument.Parse(stdout);
            JsonElement? video = null;
            bool audio = false;
            string? audioCodec = null;
            foreach (var s in doc.RootElement.GetProperty("streams").EnumerateArray())
            {
                var type = s.TryGetProperty("codec_type", out var t) ? t.GetString() : null;
                if (type == "video" && video is null) video = s;
                if (type == "audio" && !audio)
                {
                    audio = true;
                    audioCodec = s.TryGetProperty("codec_name", out var cn) ? cn.GetString() : null;
                }
            }
            if (video is not JsonElement v) throw new Data.DataException(path, "it has no video stream");
            int w = v.GetProperty("width").GetInt32(), h = v.GetProperty("height").GetInt32();
            var rate = v.TryGetProperty("avg_frame_rate", out var ar) && ar.GetString() is string a && a != "0/0" ? a
                : v.TryGetProperty("r_frame_rate", out var rr) ? rr.GetString() ?? "25/1" : "25/1";
            long? frames = v.TryGetProperty("nb_frames", out var nf) && long.TryParse(nf.GetString(), NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : null;
            if (w <= 0 || h <= 0) throw new Data.DataException(path, $"bad video size {w}x{h}");
            return new VideoInfo(w, h, rate, frames, audio, audioCodec);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new Data.DataException(path, "ffprobe's answer could not be read: " + e.Message, e);
        }
    }

    internal static (int Code, string Stdout, string Stderr) RunToEnd(string exe, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new UserException($"could not start {exe}");
        var err = p.StandardError.ReadToEndAsync();
        var outp = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, outp, err.Result);
    }

    internal static string LastLine(string text)
    {
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.Length == 0 ? "(no message)" : lines[^1];
    }
}

/// <summary>A long-lived ffmpeg child process with its stderr drained into a bounded buffer.</summary>
internal abstract class FfmpegProcess : IDisposable
{
    private readonly StringBuilder _log = new();
    protected readonly Process Proc;

    protected FfmpegProcess(string ffmpeg, IEnumerable<string> args, bool writeStdin, bool readStdout)
    {
        var psi = new ProcessStartInfo(ffmpeg)
        {
            UseShellExecute = false,
            RedirectStandardInput = writeStdin,
            RedirectStandardOutput = readStdout,
            RedirectStandardError = true,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Proc = Process.Start(psi) ?? throw new UserException($"could not start {ffmpeg}");
        // ffmpeg blocks when nobody reads its stderr; keep the tail for error messages.
        Proc.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (_log)
            {
                _log.AppendLine(e.Data);
                if (_log.Length > 16_000) _log.Remove(0, _log.Length - 8_000);
            }
        };
        Proc.BeginErrorReadLine();
    }

    /// <summary>The last lines ffmpeg wrote to stderr.</summary>
    public string Log
    {
        get { lock (_log) return _log.ToString(); }
    }

    protected string Tail() => Ffmpeg.LastLine(Log);

    public virtual void Dispose()
    {
        try
        {
            if (!Proc.HasExited)
            {
                Proc.Kill(entireProcessTree: true);
                Proc.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException) { }
        Proc.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>
/// Decodes a video into raw rgb24 frames read from ffmpeg's stdout. Frames pass through one for one
/// (-vsync passthrough): a constant-rate resampler would duplicate frames of, e.g., AVIs without timestamps.
/// </summary>
internal sealed class VideoReader : FfmpegProcess
{
    private readonly Stream _stdout;
    private readonly string _path;

    public VideoReader(string path, VideoInfo info, string? searchPath = null)
        : base(Ffmpeg.Find("ffmpeg", searchPath), new[] { "-nostdin", "-v", "error", "-i", path, "-map", "0:v:0", "-vsync", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-" },
            writeStdin: false, readStdout: true)
    {
        Info = info;
        _path = path;
        _stdout = Proc.StandardOutput.BaseStream;
    }

    public VideoInfo Info { get; }
    public int FrameBytes => Info.Width * Info.Height * 3;

    /// <summary>Fills frame (Width·Height·3 bytes); false at the end of the video.</summary>
    public bool Read(byte[] frame)
    {
        if (frame.Length != FrameBytes) throw new ArgumentException($"frame buffer holds {frame.Length} bytes, a frame is {FrameBytes}");
        int got = 0;
        while (got < frame.Length)
        {
            int n = _stdout.Read(frame, got, frame.Length - got);
            if (n == 0) break;
            got += n;
        }
        if (got == frame.Length) return true;
        Proc.WaitForExit();
        if (got > 0 || Proc.ExitCode != 0)
            throw new Data.DataException(_path, got > 0 ? $"the decoder stopped in the middle of a frame: {Tail()}" : $"ffmpeg could not decode it: {Tail()}");
        return false;
    }
}

/// <summary>
/// Encodes raw rgb24 frames written to ffmpeg's stdin into H.264 (yuv420p), copying the audio of
/// audioSource when it has any (map 1:a? — no audio is fine).
/// </summary>
internal sealed class VideoWriter : FfmpegProcess
{
    private readonly Stream _stdin;
    private readonly string _path;
    private readonly string _tmp;
    private bool _finished;

    private VideoWriter(string ffmpeg, string path, string tmp, IEnumerable<string> args) : base(ffmpeg, args, writeStdin: true, readStdout: false)
    {
        _path = path;
        _tmp = tmp;
        _stdin = Proc.StandardInput.BaseStream;
    }

    public static VideoWriter Open(string path, VideoInfo info, string? audioSource, string? searchPath = null)
    {
        var ffmpeg = Ffmpeg.Find("ffmpeg", searchPath);
        // Write beside the target and rename at the end, so a failed run leaves no half video under the real name.
        var tmp = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, "." + Path.GetFileNameWithoutExtension(path) + ".part" + Path.GetExtension(path));
        var args = new List<string>
        {
            "-nostdin", "-v", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", $"{info.Width}x{info.Height}", "-r", info.FrameRate, "-i", "-",
        };
        if (audioSource is not null) args.AddRange(new[] { "-i", audioSource });
        args.AddRange(new[] { "-map", "0:v:0" });
        if (audioSource is not null) args.AddRange(new[] { "-map", "1:a?", "-c:a", AudioCanBeCopied(info.AudioCodec, path) ? "copy" : "aac" });
        // yuv420p needs even sizes; pad by one pixel when the input is odd.
        bool odd = info.Width % 2 == 1 || info.Height % 2 == 1;
        if (odd) args.AddRange(new[] { "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2" });
        args.AddRange(new[] { "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", tmp });
        return new VideoWriter(ffmpeg, path, tmp, args);
    }

    /// <summary>
    /// MP4/MOV hold only some audio codecs: PCM from a .mov or .avi, for example, cannot be copied
    /// into .mp4 and is re-encoded as AAC instead. Matroska and others take any codec as it is.
    /// </summary>
    public static bool AudioCanBeCopied(string? codec, string outputPath)
    {
        var ext = Path.GetExtension(outputPath).ToLowerInvariant();
        if (ext is not (".mp4" or ".m4v" or ".mov")) return true;
        return codec is "aac" or "mp3" or "ac3" or "eac3" or "alac" or "opus" or "flac";
    }

    public void Write(byte[] frame)
    {
        if (_finished) throw new InvalidOperationException("the video is already finished");
        try
        {
            _stdin.Write(frame, 0, frame.Length);
        }
        catch (IOException e)
        {
            Proc.WaitForExit(5000);
            throw new UserException($"{_path}: the ffmpeg encoder stopped: {Tail()}", e);
        }
    }

    /// <summary>Closes the frame pipe, waits for ffmpeg to finish the file, and moves it into place.</summary>
    public void Finish()
    {
        if (_finished) return;
        _finished = true;
        try { _stdin.Close(); } catch (IOException) { }
        Proc.WaitForExit();
        if (Proc.ExitCode != 0)
        {
            TryDelete(_tmp);
            throw new UserException($"{_path}: ffmpeg failed to write the video (exit {Proc.ExitCode}): {Tail()}");
        }
        File.Move(_tmp, _path, overwrite: true);
    }

    public override void Dispose()
    {
        base.Dispose();
        if (!_finished) TryDelete(_tmp);
    }

    private static void TryDelete(string p)
    {
        try { File.Delete(p); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
