using CommandLine;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Export;
using DeepLabTorch.Models;
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

    public override int Run()
    {
        var format = Format.Trim().ToLowerInvariant();
        if (format is not ("safetensors" or "onnx"))
            throw new UserException($"--format must be safetensors or onnx, got '{Format}'");
        if (format == "safetensors" && (WithPreprocessing || Argmax))
            throw new UserException("--with-preprocessing and --argmax apply to --format onnx only");

        var request = new ModelRequest { Backbone = Backbone, OutputStride = OutputStride, NumClasses = NumClasses };
        if (Directory.Exists(Output)) throw new UserException($"--output {Output} is a folder; give the file to write, e.g. {Path.Combine(Output, "model." + format)}");
        if (Path.GetDirectoryName(Path.GetFullPath(Output)) is { } folder) Directory.CreateDirectory(folder);
        if (format == "onnx")
        {
            // Load into the real network: this validates every key and shape before the graph is built.
            using var loaded = ModelLoader.Load(Weights, request, Loggers.CreateLogger(LogCategories.Checkpoints));
            var model = loaded.Model;
            OnnxExport.Write(model, Output, WithPreprocessing, Argmax);
            var c = model.Config;
            Results.WriteLine($"wrote {Output}: ONNX opset {DeepLabTorch.Export.Onnx.OnnxGraphBuilder.Opset} ({c.Backbone}, output stride {c.OutputStride}, {c.NumClasses} classes, BatchNorm folded)");
            return 0;
        }
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
