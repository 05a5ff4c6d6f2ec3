using System.Globalization;
using CommandLine;
using DeepLabTorch.Runtime;
using DeepLabTorch.Data;
using DeepLabTorch.Inference;
using DeepLabTorch.Models;
using DeepLabTorch.Extensions;
using DeepLabTorch.Cli.Progress;
using Microsoft.Extensions.Logging;
using TorchSharp;

namespace DeepLabTorch.Cli.Verbs;

[Verb("matte", HelpText = "Replace the background behind people in images or video: person mask from the model, edges refined " +
    "with a guided filter, composited over an image, a colour or the blurred input. Video goes through ffmpeg, audio kept.")]
public sealed class MatteVerb : ModelRunOptions
{
    [Option("weights", Required = true, HelpText = "A 2-class portrait model, or a VOC model (person = class 15).")]
    public string Weights { get; set; } = "";
    [Option("input", Required = true, Min = 1, HelpText = "One or more images, videos (.mp4 .mov .mkv .avi .webm ...), folders of them, or globs (quoted, or expanded by the shell).")]
    public IEnumerable<string> Input { get; set; } = Array.Empty<string>();
    [Option("background", Required = true, HelpText = "An image file, a colour (#RRGGBB, #RGB or a name such as green), 'blur' or 'blur:RADIUS'.")]
    public string Background { get; set; } = "";
    [Option("output", Required = true, HelpText = "Output folder; or, for a single input, a file name (.png/.jpg for images, .mp4 etc. for video).")]
    public string Output { get; set; } = "";

    [Option("person-class", HelpText = "The person class, by index or name, or several separated by commas whose probabilities add up, e.g. skin,hair,neck " +
        "(default: 1 for a 2-class model, 15 for VOC, every part but the background for a CelebAMask-HQ face-parsing model).")]
    public string? PersonClass { get; set; }
    [Option("edge-radius", HelpText = "Guided-filter radius in pixels; 0 turns edge refinement off (default: 1.5% of the short side).")]
    public int? EdgeRadius { get; set; }
    [Option("edge-eps", Default = 1e-3, HelpText = "Guided-filter regularisation: larger is softer, smaller follows image edges more.")]
    public double EdgeEps { get; set; } = 1e-3;
    [Option("smooth", Default = 0.0, HelpText = "Video: temporal smoothing of the mask in [0, 1): alpha = s*previous + (1-s)*current. 0 is off.")]
    public double Smooth { get; set; }
    [Option("blend", Default = "alpha", HelpText = "How the person meets the background: alpha (alpha blending) or poisson (gradient-domain " +
        "blending in a band around the outline: the photo's gradients, no colour seam).")]
    public string Blend { get; set; } = "alpha";
    [Option("blend-band", HelpText = "With --blend poisson: the band's half-width in pixels (default: 1% of the short side, at least 2).")]
    public int? BlendBand { get; set; }
    [Option("save-alpha", HelpText = "Images: also write <stem>_alpha.png, the refined matte as 8-bit gray.")]
    public bool SaveAlpha { get; set; }

    [Option("resize", HelpText = "Resize so the short side is this many pixels before the model (faster on large frames).")]
    public int? Resize { get; set; }
    [Option("scales", Default = "1.0", HelpText = "Comma-separated test-time scales.")]
    public string Scales { get; set; } = "1.0";
    [Option("flip", HelpText = "Also average over the mirrored image.")]
    public bool Flip { get; set; }

    public override int Run()
    {
        var predictOptions = PredictVerb.BuildOptions(Scales, Flip, Resize, null, 1.0 / 3.0);
        var background = Inference.Background.Parse(Background);
        var blend = ParseBlend(Blend);
        var poisson = new PoissonOptions { BandRadius = BlendBand }.Validate();
        var files = InputFiles.Expand(Input, includeVideo: true);
        var log = Loggers.CreateLogger(LogCategories.Inference);
        var device = Engine.SetUp(Device, Threads, log: Loggers.CreateLogger(LogCategories.Runtime));
        // Fail on ffmpeg before loading a model when there is video to do.
        if (files.Any(Ffmpeg.IsVideo)) Ffmpeg.Find("ffmpeg");
        using var loaded = ModelLoader.LoadForInference(Weights, new ModelRequest { Backbone = Backbone, OutputStride = OutStride, NumClasses = NumClasses }, device,
            Loggers.CreateLogger(LogCategories.Checkpoints), PrecisionNames.Parse(Precision));
        // --person-class a,b,c: several classes are the person together; a face-parsing model (CelebAMask-HQ's
        // classes) takes every part but the background, the whole visible person, by default.
        int[]? persons = PersonClass is { } pc
            ? pc.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(p => ModelLoader.ResolveClass(p, loaded.ClassNames, "--person-class")).ToArray()
            : loaded.ClassNames.SequenceEqual(CelebAMaskHq.ClassNames) ? Enumerable.Range(1, loaded.ClassNames.Count - 1).ToArray() : null;
        var matteOptions = new MatteOptions
        {
            PersonClasses = persons is { Length: > 1 } ? persons : null, PersonClass = persons is [var one] ? one : null,
            EdgeRadius = EdgeRadius, EdgeEps = EdgeEps, Smoothing = Smooth,
            Blend = blend, Poisson = poisson,
        }.Validate();
        var classes = matteOptions.ResolvePersonClasses(loaded.Config.NumClasses);
        log.LogInformation("matte: {Inputs} input(s), person = class {PersonClass} ({PersonName}), background {Background}",
            files.Count, string.Join(",", classes), string.Join(",", classes.Select(k => loaded.ClassNames[k])), Describe(background));

        bool singleFileOutput = files.Count == 1 && Path.HasExtension(Output) && !Directory.Exists(Output);
        if (!singleFileOutput) Directory.CreateDirectory(Output);
        var predictor = new Predictor(loaded.Model, predictOptions, device);
        using var renderer = new BackgroundRenderer(background, path => ImageCodec.DecodeImage(path));
        using var matter = new Matter(predictor, matteOptions);

        int failed = 0, images = 0, videos = 0;
        var stems = PredictJob.OutputStems(files);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var progress = ConsoleProgress.ForStderr(Quiet);
        var imageCount = files.Count(f => !Ffmpeg.IsVideo(f));
        var imagesThrough = 0; // written or skipped
        void ImageDone() => progress.OrNull?.Report(new ProgressReport("matte", ++imagesThrough, imageCount, "images", clock.Elapsed));
        for (int i = 0; i < files.Count; i++)
        {
            var file = files[i];
            bool video = Ffmpeg.IsVideo(file);
            var target = singleFileOutput ? Output : Path.Combine(Output, stems[i] + (video ? ".mp4" : ".png"));
            var dir = Path.GetDirectoryName(Path.GetFullPath(target));
            if (dir is not null) Directory.CreateDirectory(dir);
            try
            {
                if (video)
                {
                    log.LogInformation("matte: {File} → {Target}", file, target);
                    var r = VideoMatting.Run(file, target, matter, renderer, progress.OrNull);
                    log.LogInformation(r.Info.HasAudio
                            ? "matte: {Frames} frames of {Width}x{Height} in {Seconds:F1} s ({FramesPerSecond:F1} fps), audio copied"
                            : "matte: {Frames} frames of {Width}x{Height} in {Seconds:F1} s ({FramesPerSecond:F1} fps)",
                        r.Frames, r.Info.Width, r.Info.Height, r.Elapsed.TotalSeconds, r.Fps);
                    videos++;
                }
                else
                {
                    var (rgb, h, w) = ImageCodec.DecodeImage(file);
                    matter.Reset();
                    using var scope = torch.NewDisposeScope();
                    var frame = RgbTensors.FromBytes(rgb, h, w);
                    var alpha = matter.Alpha(frame);
                    var bg = renderer.Render(frame);
                    var outp = RgbTensors.ToBytes(matter.Blend(frame, bg, alpha));
                    WriteImage(target, outp, h, w);
                    if (SaveAlpha)
                    {
                        var a = alpha.mul(HeldScalars.Byte255).round().clamp(HeldScalars.Zero, HeldScalars.Byte255).to(torch.ScalarType.Byte).ToArray<byte>();
                        var alphaPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(target))!, Path.GetFileNameWithoutExtension(target) + "_alpha.png");
                        ImageCodec.WriteGrayPng(alphaPath, a, h, w);
                    }
                    images++;
                    ImageDone();
                }
            }
            catch (Exception e) when (e is DataException or IOException or UnauthorizedAccessException)
            {
                if (e is DataException d) log.LogWarning("skipped {File}: {Reason}", d.Path, d.Reason);
                else log.LogWarning("skipped {File}: {Reason}", file, e.Message);
                failed++;
                if (!video) ImageDone();
            }
        }
        TerminalLine.Console.End();
        Results.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"matte: {images} image(s), {videos} video(s) in {clock.Elapsed.TotalSeconds:F1} s; {failed} failed; output in {Output}"));
        return failed > 0 ? 1 : 0;
    }

    /// <summary>--blend alpha|poisson, any case; anything else is one UserException.</summary>
    public static BlendMode ParseBlend(string value) => value.Trim().ToLowerInvariant() switch
    {
        "alpha" => BlendMode.Alpha,
        "poisson" => BlendMode.Poisson,
        _ => throw new UserException($"--blend '{value}' is not a blend mode: give alpha or poisson"),
    };

    private static void WriteImage(string path, byte[] rgb, int h, int w)
    {
        var ext = Path.GetExtension(path).ToLowerInvariant();
        if (ext is ".jpg" or ".jpeg") ImageCodec.WriteJpeg(path, rgb, h, w, 92);
        else if (ext == ".png") ImageCodec.WritePng(path, rgb, h, w);
        else throw new UserException($"{path}: write images as .png or .jpg");
    }

    private static string Describe(Inference.Background b) => b switch
    {
        Inference.Background.Colour c => $"#{c.R:X2}{c.G:X2}{c.B:X2}",
        Inference.Background.Blur bl => bl.Radius is int r ? $"blur (radius {r})" : "blur",
        Inference.Background.Picture p => p.Path,
        _ => b.ToString(),
    };
}
