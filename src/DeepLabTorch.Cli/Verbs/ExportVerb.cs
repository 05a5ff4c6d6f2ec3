using CommandLine;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Export;
using DeepLabTorch.Export.Quantization;
using DeepLabTorch.Models;
using Microsoft.Extensions.Logging;
using DeepLabTorch.Runtime;

namespace DeepLabTorch.Cli.Verbs;

[Verb("export", HelpText = "Export weights for deployment: safetensors (reference key names) or ONNX.")]
public sealed class ExportVerb : VerbBase
{
    [Option("weights", Required = true, HelpText = "Our checkpoint, a safetensors weight file or a PyTorch .pth/.pth.tar.")]
    public string Weights { get; set; } = "";

    [Option("format", Default = "safetensors", HelpText = "safetensors | onnx")]
    public string Format { get; set; } = "safetensors";

    [Option("output", Required = true, HelpText = "The file to write (replaced atomically).")]
    public string Output { get; set; } = "";

    [Option("backbone", ResourceType = typeof(BackboneHelp), HelpText = nameof(BackboneHelp.ForFilesWithoutConfig))]
    public string? Backbone { get; set; }

    [Option("out-stride", HelpText = "8 or 16, for files that carry no model config.")]
    public int? OutputStride { get; set; }

    [Option("num-classes", HelpText = "Class count, for files that carry no model config.")]
    public int? NumClasses { get; set; }

    [Option("with-preprocessing", HelpText = "ONNX: take uint8 NHWC RGB input and normalize inside the graph.")]
    public bool WithPreprocessing { get; set; }

    [Option("argmax", HelpText = "ONNX: output class ids (int64 [N,H,W]) instead of logits.")]
    public bool Argmax { get; set; }

    [Option("quantize", HelpText = "ONNX: int8 (a QDQ graph calibrated on --calibration images) or fp16 (float16 inside, float32 input and output).")]
    public string? Quantize { get; set; }

    [Option("calibration", HelpText = "--quantize int8: a folder of images (.jpg, .png) run through the float model to measure activation ranges.")]
    public string? Calibration { get; set; }

    [Option("calibration-count", Default = 32, HelpText = "--quantize int8: calibrate on at most this many images of the folder (file-name order).")]
    public int CalibrationCount { get; set; } = 32;

    [Option("calibration-method", Default = "minmax", HelpText = "--quantize int8: minmax | percentile (99.999% of |x|) | entropy (least KL divergence).")]
    public string CalibrationMethodName { get; set; } = "minmax";

    [Option("keep-float", Separator = ',', HelpText = "--quantize int8: convolutions left in float32, by state_dict path or module prefix, comma-separated; "
        + "'first' and 'classifier' name the defaults, which the list replaces.")]
    public IEnumerable<string>? KeepFloat { get; set; }

    [Option("activations", Default = "uint8", HelpText = "--quantize int8: the activations' integer type, uint8 (faster in ONNX Runtime here) or int8.")]
    public string Activations { get; set; } = "uint8";

    public override int Run()
    {
        var format = Format.Trim().ToLowerInvariant();
        if (format is not ("safetensors" or "onnx"))
            throw new UserException($"--format must be safetensors or onnx, got '{Format}'");
        if (format == "safetensors" && (WithPreprocessing || Argmax))
            throw new UserException("--with-preprocessing and --argmax apply to --format onnx only");

        var quantize = CheckQuantizeFlags(format);
        var request = new ModelRequest { Backbone = Backbone, OutputStride = OutputStride, NumClasses = NumClasses };
        if (Directory.Exists(Output)) throw new UserException($"--output {Output} is a folder; give the file to write, e.g. {Path.Combine(Output, "model." + format)}");
        if (Path.GetDirectoryName(Path.GetFullPath(Output)) is { } folder) Directory.CreateDirectory(folder);
        if (format == "onnx")
        {
            // Load into the real network: this validates every key and shape before the graph is built.
            using var loaded = ModelLoader.Load(Weights, request, Loggers.CreateLogger(LogCategories.Checkpoints));
            var model = loaded.Model;
            var what = WriteOnnx(model, quantize);
            var c = model.Config;
            Results.WriteLine($"wrote {Output}: ONNX opset {DeepLabTorch.Export.Onnx.OnnxGraphBuilder.Opset} ({c.Backbone}, output stride {c.OutputStride}, {c.NumClasses} classes, BatchNorm folded{what})");
            return 0;
        }
        return ExportSafetensors(request);
    }

    /// <summary>The --quantize mode (null, "int8" or "fp16"), its flags checked before any model is loaded.</summary>
    private string? CheckQuantizeFlags(string format)
    {
        var quantize = Quantize?.Trim().ToLowerInvariant();
        if (quantize is not (null or "int8" or "fp16")) throw new UserException($"--quantize must be int8 or fp16, got '{Quantize}'");
        if (quantize is not null && format != "onnx") throw new UserException("--quantize applies to --format onnx only");
        bool calibrationFlags = Calibration is not null || KeepFloat?.Any() == true;
        if (quantize != "int8" && calibrationFlags) throw new UserException("--calibration and --keep-float apply to --quantize int8 only");
        if (quantize == "int8" && string.IsNullOrWhiteSpace(Calibration))
            throw new UserException("--quantize int8 needs --calibration DIR: a folder of images like the ones the model will see (a few dozen suffice)");
        if (quantize == "int8" && CalibrationCount < 1) throw new UserException($"--calibration-count must be >= 1, got {CalibrationCount}");
        return quantize;
    }

    private string WriteOnnx(SegmentationModel model, string? quantize)
    {
        switch (quantize)
        {
            case "int8":
                var options = new Int8Options(Calibration!, CalibrationCount, Int8Options.ParseMethod(CalibrationMethodName),
                    KeepFloat?.Any() == true ? KeepFloat.ToList() : null, Int8Options.ParseActivations(Activations));
                var summary = QuantizedOnnxExport.WriteInt8(model, Output, options, Loggers.CreateLogger(LogCategories.Export), WithPreprocessing, Argmax);
                return $", int8 QDQ: {summary.QuantisedConvs.Count} convolutions quantised, {summary.FloatConvs.Count} in float32, calibrated on {summary.CalibrationImages} image(s)";
            case "fp16":
                QuantizedOnnxExport.WriteFloat16(model, Output, WithPreprocessing, Argmax);
                return ", float16 inside, float32 input and output";
            default:
                OnnxExport.Write(model, Output, WithPreprocessing, Argmax);
                return "";
        }
    }

    private int ExportSafetensors(ModelRequest request)
    {
        var sd = WeightFiles.LoadStateDict(Weights, out var info);
        try
        {
            // The safetensors export copies the file's tensors; the same resolution as the loader names the model they belong to.
            var resolved = ModelLoader.Resolve(Weights, info, sd, request);
            var meta = new Dictionary<string, string>
            {
                ["backbone"] = resolved.Backbone,
                ["output_stride"] = resolved.OutputStride.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["num_classes"] = resolved.NumClasses.ToString(System.Globalization.CultureInfo.InvariantCulture),
            };
            // The reference model's state_dict also lists alias keys (MobileNetV2): add the ones the file lacks,
            // so the reference's strict load_state_dict accepts the export.
            var aliases = (ModelCatalog.IsNetwork(resolved.Backbone) ? new Dictionary<string, string>() : ModelCatalog.Get(resolved.Backbone).AliasMap)
                .Where(a => sd.ContainsKey(a.Value) && !sd.ContainsKey(a.Key))
                .ToDictionary(a => a.Key, a => a.Value);
            SafetensorsExport.Write(Output, sd, aliases, meta);
            Results.WriteLine($"wrote {Output}: {sd.Count + aliases.Count} tensors ({resolved.Backbone}, output stride {resolved.OutputStride}, {resolved.NumClasses} classes)");
            return 0;
        }
        finally
        {
            foreach (var t in sd.Values) t.Dispose();
        }
    }
}
