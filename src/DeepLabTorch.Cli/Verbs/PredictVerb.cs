using System.Globalization;
using CommandLine;
using DeepLabTorch.Runtime;
using Microsoft.Extensions.Logging;
using DeepLabTorch.Inference;
using DeepLabTorch.Models;
using DeepLabTorch.Extensions;
using TorchSharp;
using DeepLabTorch.Cli.Progress;

namespace DeepLabTorch.Cli.Verbs;

[Verb("predict", HelpText = "Segment images (a file, a folder or a glob): palette PNG masks, and optionally overlays, " +
    "class probabilities and raw logits (.npy). Input: RGB, /255, ImageNet mean/std, no resize unless --resize.")]
public sealed class PredictVerb : ModelRunOptions
{
    [Option("weights", Required = true, HelpText = "Our checkpoint (.safetensors), a plain safetensors state_dict, a reference .pth/.pth.tar, " +
        "or a model from `export --format onnx` (.onnx: runs in ONNX Runtime on the CPU).")]
    public string Weights { get; set; } = "";
    [Option("engine", HelpText = "torch | onnx: TorchSharp on the weights, or ONNX Runtime on an exported .onnx (default: onnx for a .onnx file, else torch).")]
    public string? EngineName { get; set; }
    [Option("input", Required = true, Min = 1, HelpText = "One or more images, folders of images (.jpg .jpeg .png) or globs such as 'photos/**/*.jpg' (quoted, or expanded by the shell).")]
    public IEnumerable<string> Input { get; set; } = Array.Empty<string>();
    [Option("output", Required = true, HelpText = "Output folder (created). Per image: <stem>.png, and <stem>_overlay.png, <stem>_prob.png, <stem>.npy on request.")]
    public string Output { get; set; } = "";

    [Option("overlay", HelpText = "Also write <stem>_overlay.png: class colours blended over the image (background left as is).")]
    public bool Overlay { get; set; }
    [Option("overlay-opacity", Default = 0.5, HelpText = "Weight of the class colour in the overlay, 0..1.")]
    public double OverlayOpacity { get; set; } = 0.5;
    [Option("save-probs", HelpText = "Also write <stem>_prob.png: the softmax probability of --prob-class as 8-bit gray (255 = 1.0).")]
    public bool SaveProbs { get; set; }
    [Option("prob-class", HelpText = "Class for --save-probs, by index or name (default: 'person' when the model has it, else class 1).")]
    public string? ProbClass { get; set; }
    [Option("save-logits", HelpText = "Also write <stem>.npy: float32 [C,H,W] pre-softmax logits at the input's size (numpy.load reads it).")]
    public bool SaveLogits { get; set; }
    [Option("part-masks", HelpText = "Also write <stem>_<class>.png for every class but the background: 255 where the pixel is that class (one mask per face part with bisenet/stdc).")]
    public bool PartMasks { get; set; }

    [Option("no-masks", HelpText = "Do not write the mask PNGs (only the other outputs asked for).")]
    public bool NoMasks { get; set; }

    [Option("resize", HelpText = "Resize so the short side is this many pixels before the model; outputs keep the original size.")]
    public int? Resize { get; set; }
    [Option("scales", Default = "1.0", HelpText = "Comma-separated test-time scales, e.g. 0.75,1.0,1.25 (logits averaged).")]
    public string Scales { get; set; } = "1.0";
    [Option("flip", HelpText = "Also average over the horizontally mirrored image.")]
    public bool Flip { get; set; }
    [Option("window", HelpText = "Sliding-window inference with square windows of this size (for very large images).")]
    public int? Window { get; set; }
    [Option("window-overlap", Default = 1.0 / 3.0, HelpText = "Overlap between neighbouring windows, in [0, 1).")]
    public double WindowOverlap { get; set; } = 1.0 / 3.0;
    [Option("batch-size", Default = 1, HelpText = "Images per forward pass; consecutive images of equal size are batched.")]
    public int BatchSize { get; set; } = 1;

    /// <summary>The smallest --window: four feature cells at output stride 16 (the library takes any size; tests use tiny ones).</summary>
    internal const int MinimumWindow = 64;

    public override int Run()
    {
        if (Window is int w && w < MinimumWindow)
            throw new UserException($"--window {w} is too small: a window must be at least {MinimumWindow} pixels, since the model sees it at 1/16 " +
                "of its size (a few feature cells at least) and a tiny window means thousands of forward passes per image");
        var options = BuildOptions(Scales, Flip, Resize, Window, WindowOverlap);
        var useOnnx = UseOnnx(EngineName, Weights);
        var files = InputFiles.Expand(Input);
        using var model = useOnnx ? OpenOnnx(Weights) : OpenTorch(Weights);
        int? probClass = null;
        if (SaveProbs)
            probClass = ProbClass is { } pc ? ModelLoader.ResolveClass(pc, model.ClassNames, "--prob-class")
                : DefaultProbabilityClass(model.ClassNames);
        else if (ProbClass is not null) throw new UserException("--prob-class goes with --save-probs");
        if (!(OverlayOpacity >= 0 && OverlayOpacity <= 1)) throw new UserException($"--overlay-opacity must lie in [0, 1], got {OverlayOpacity}");
        var outputs = new PredictOutputs
        {
            Masks = !NoMasks, Overlay = Overlay, OverlayOpacity = OverlayOpacity, ProbabilityClass = probClass, Logits = SaveLogits,
            PartMasks = PartMasks ? model.ClassNames : null,
        };
        if (!outputs.Masks && !outputs.Overlay && outputs.ProbabilityClass is null && !outputs.Logits && outputs.PartMasks is null)
            throw new UserException("--no-masks leaves nothing to write: add --overlay, --save-probs, --save-logits or --part-masks");

        var log = Loggers.CreateLogger(LogCategories.Inference);
        var scales = string.Join(",", options.Scales.Select(s => s.ToString(CultureInfo.InvariantCulture)));
        log.LogInformation(options.Flip
                ? "predict: {Images} image(s), {Model}, {Classes} classes, device {Device}, scales {Scales} + flip"
                : "predict: {Images} image(s), {Model}, {Classes} classes, device {Device}, scales {Scales}",
            files.Count, model.Description, model.ClassNames.Count, model.Engine.Device.ToString(), scales);
        var palette = ModelLoader.PaletteFor(model.ClassNames);
        var job = new PredictJob(new Predictor(model.Engine, options), Output, outputs, palette, BatchSize, log);
        var summary = job.Run(files, ConsoleProgress.ForStderr(Quiet).OrNull);
        Results.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"predict: {summary.Images} image(s) in {summary.Elapsed.TotalSeconds:F1} s ({summary.ImagesPerSecond:F2} images/s); {summary.Failed} failed; outputs in {Output}"));
        return summary.Failed > 0 ? 1 : 0;
    }

    /// <summary>'person' when the model has it, else class 1 (the foreground of a binary model).</summary>
    internal static int DefaultProbabilityClass(IReadOnlyList<string> names) => Data.ClassNames.PersonIndex(names);

    /// <summary>Test-time options from the shared flags (predict and matte).</summary>
    internal static PredictOptions BuildOptions(string scales, bool flip, int? resize, int? window, double overlap) => new PredictOptions
    {
        Scales = ParseScales(scales), Flip = flip, ResizeShort = resize, WindowSize = window, WindowOverlap = overlap,
    }.Validate();

    internal static double[] ParseScales(string text)
    {
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0) throw new UserException("--scales: give at least one scale, e.g. 1.0 or 0.75,1.0,1.25");
        return parts.Select(p => double.TryParse(p, NumberStyles.Float, CultureInfo.InvariantCulture, out var s) && s > 0 && s <= 8
            ? s : throw new UserException($"--scales: '{p}' is not a scale factor in (0, 8]")).ToArray();
    }
}
