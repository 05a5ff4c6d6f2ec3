using System.Globalization;
using CommandLine;
using DeepLabTorch.Runtime;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Data;
using DeepLabTorch.Evaluation;
using DeepLabTorch.Inference;
using DeepLabTorch.Models;
using DeepLabTorch.Reporting;
using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;
using DeepLabTorch.Cli.Progress;
using Microsoft.Extensions.Logging;

namespace DeepLabTorch.Cli.Verbs;

[Verb("eval", HelpText = "Evaluate weights on a split: streaming confusion matrix at full image size, per-class IoU table, mIoU. " +
    "Multi-scale + flip testing with --scales and --flip.")]
public sealed class EvalVerb : VerbBase
{
    [Option("weights", Required = true, HelpText = "Our checkpoint (.safetensors), a plain safetensors state_dict or a reference .pth/.pth.tar.")]
    public string Weights { get; set; } = "";
    [Option("backbone", ResourceType = typeof(BackboneHelp), HelpText = nameof(BackboneHelp.ForFilesWithoutConfig))]
    public string? Backbone { get; set; }
    [Option("out-stride", HelpText = "Output stride for weight files that do not say (default: 16).")]
    public int? OutStride { get; set; }
    [Option("num-classes", HelpText = "Number of classes for weight files that do not say (default: the data set's).")]
    public int? NumClasses { get; set; }
    [Option("dataset", Default = "pascal", HelpText = "pascal | sbd | folder | synthetic.")]
    public string Dataset { get; set; } = "pascal";
    [Option("data-root", HelpText = "Data set folder (required except for synthetic).")]
    public string? DataRoot { get; set; }
    [Option("use-sbd", HelpText = "Use the SBD-augmented pascal lists.")]
    public bool UseSbd { get; set; }
    [Option("split", Default = "val", HelpText = "train | val | trainval | trainaug.")]
    public string Split { get; set; } = "val";
    [Option("base-size", Default = 513, HelpText = "Base size (used with --val-crop).")]
    public int BaseSize { get; set; } = 513;
    [Option("crop-size", Default = 513, HelpText = "Crop size (used with --val-crop).")]
    public int CropSize { get; set; } = 513;
    [Option("val-crop", HelpText = "Evaluate the reference's fixed centre crop instead of full images.")]
    public bool ValCrop { get; set; }
    [Option("workers", Default = 4, HelpText = "Data loader threads.")]
    public int Workers { get; set; } = 4;
    [Option("scales", Default = "1.0", HelpText = "Comma-separated test scales, e.g. 0.5,0.75,1.0,1.25,1.5,1.75.")]
    public string Scales { get; set; } = "1.0";
    [Option("flip", HelpText = "Also average over horizontally flipped inputs.")]
    public bool Flip { get; set; }
    [Option("save-predictions", HelpText = "Write every prediction as a palette PNG into this folder.")]
    public string? SavePredictions { get; set; }
    [Option("max-images", HelpText = "Evaluate at most this many images.")]
    public int? MaxImages { get; set; }
    [Option("json", HelpText = "Print the metrics as JSON instead of a table.")]
    public bool Json { get; set; }
    [Option("device", HelpText = "cpu | cuda | cuda:N (default: cuda when available).")]
    public string? Device { get; set; }
    [Option("no-cuda", HelpText = "Run on the CPU.")]
    public bool NoCuda { get; set; }
    [Option("threads", HelpText = "CPU threads for libtorch (default: all cores).")]
    public int? Threads { get; set; }
    [Option("precision", Default = "float32", HelpText = "float32 | bf16: evaluate the network in bfloat16 (scores are computed from float32 logits).")]
    public string Precision { get; set; } = "float32";

    public override int Run()
    {
        var scales = PredictVerb.ParseScales(Scales);
        if (MaxImages is < 1) throw new UserException($"--max-images must be >= 1, got {MaxImages}");
        var device = Engine.SetUp(Device, Threads, NoCuda, Loggers.CreateLogger(LogCategories.Runtime));
        var dataLog = Loggers.CreateLogger(LogCategories.Data);

        var options = new DataOptions
        {
            Dataset = Dataset, DataRoot = DataRoot, UseSbd = UseSbd, BaseSize = BaseSize, CropSize = CropSize, ValCrop = ValCrop, Workers = Workers,
        };
        var ds = Datasets.Open(options, Split, dataLog);
        bool onnx = Weights.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase);
        using var loaded = onnx ? null : ModelLoader.LoadForInference(Weights, new ModelRequest { Backbone = Backbone, OutputStride = OutStride, NumClasses = NumClasses },
            device, Loggers.CreateLogger(LogCategories.Checkpoints), PrecisionNames.Parse(Precision));
        using var engine = onnx ? OpenOnnx() : null;
        nn.Module<Tensor, Tensor> network = loaded?.Model ?? (nn.Module<Tensor, Tensor>)engine!;
        var numClasses = loaded?.Model.Config.NumClasses ?? engine!.NumClasses;
        var (backbone, outputStride) = loaded is null ? ("onnx", 0) : (loaded.Model.Config.Backbone, loaded.Model.Config.OutputStride);
        // An .onnx graph fixes its resizes' corner mode; every DeepLabV3+ we export aligns corners unless told, so test-time scales do too.
        bool alignCorners = loaded?.Model.Config.AlignCorners ?? true;

        {
            var names = loaded?.FileClassNames
                ?? (ds.ClassNames.Count == numClasses ? ds.ClassNames : Enumerable.Range(0, numClasses).Select(i => $"class {i}").ToArray());
            if (SavePredictions is not null) Directory.CreateDirectory(SavePredictions);
            using var loader = new DataLoader(ds, options, train: false, 1, log: dataLog);
            var scaleText = string.Join(",", scales.Select(s => s.ToString(CultureInfo.InvariantCulture)));
            var images = MaxImages is { } max ? Math.Min(max, ds.Count) : ds.Count;
            // What is about to run, as predict and matte say it: the results alone go to stdout.
            Loggers.CreateLogger(LogCategories.Inference).LogInformation(Flip
                    ? "eval: {Images} image(s) of {Dataset} {Split}, {Backbone} OS{OutputStride}, {Classes} classes, device {Device}, scales {Scales} + flip"
                    : "eval: {Images} image(s) of {Dataset} {Split}, {Backbone} OS{OutputStride}, {Classes} classes, device {Device}, scales {Scales}",
                images, ds.Name, Split, backbone, outputStride, numClasses, device.ToString(), scaleText);
            var progress = ConsoleProgress.ForStderr(Quiet);
            var r = SegmentationEvaluator.Run(network, loader, ds.Count, numClasses, names, device, new EvalOptions
            {
                Scales = scales,
                Flip = Flip,
                MaxImages = MaxImages,
                AlignCorners = alignCorners,
                OnPrediction = SavePredictions is null ? null : (id, pred, h, w) =>
                    ImageCodec.WritePalettePng(Path.Combine(SavePredictions, id + ".png"), pred, h, w),
                Progress = progress.OrNull,
                ProgressLabel = "eval",
            });
            if (Json)
            {
                Results.WriteLine(MetricsJson.Serialize(r.Metrics, new Dictionary<string, object?>
                {
                    ["weights"] = Weights, ["dataset"] = Dataset, ["split"] = Split, ["images"] = r.Images,
                    ["scales"] = scales, ["flip"] = Flip, ["seconds"] = r.Seconds,
                }));
            }
            else
            {
                Results.WriteLine($"{Weights} on {ds.Name} {Split} ({r.Images} images, scales {scaleText}{(Flip ? " + flip" : "")}):");
                Results.WriteLine(r.Metrics.FormatTable());
            }
            return 0;
        }
    }

    /// <summary>An exported .onnx (float32, fp16 or int8) run by ONNX Runtime on the CPU; flags the graph already fixes are refused.</summary>
    private OnnxModule OpenOnnx()
    {
        if (Backbone is not null || OutStride is not null)
            throw new UserException("--backbone and --out-stride do not apply to an ONNX model: the exported graph fixes them");
        if (PrecisionNames.Parse(Precision) != Models.Precision.Float32)
            throw new UserException("--precision bf16 applies to checkpoints; an ONNX model runs as it was exported");
        var module = new OnnxModule(new OnnxLogitsEngine(Weights, Threads));
        if (NumClasses is int n && n != module.NumClasses)
        {
            module.Dispose();
            throw new UserException($"--num-classes {n}: {Weights} predicts {module.NumClasses} classes");
        }
        return module;
    }

    /// <summary>ONNX Runtime's logits as a module, so the evaluator's test-time augmentation and confusion matrix apply unchanged.</summary>
    private sealed class OnnxModule(OnnxLogitsEngine engine) : nn.Module<Tensor, Tensor>("onnx")
    {
        public int NumClasses => engine.NumClasses;

        public override Tensor forward(Tensor input) => engine.Forward(input);

        protected override void Dispose(bool disposing)
        {
            if (disposing) engine.Dispose();
            base.Dispose(disposing);
        }
    }
}
