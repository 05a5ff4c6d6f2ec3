using System.Globalization;
using CommandLine;
using DeepLabTorch.Inference;
using DeepLabTorch.Models;
using DeepLabTorch.Runtime;

namespace DeepLabTorch.Cli.Verbs;

/// <summary>The options shared by the verbs that run a trained model over files (predict, matte).</summary>
public abstract class ModelRunOptions : VerbBase
{
    [Option("backbone", ResourceType = typeof(BackboneHelp), HelpText = nameof(BackboneHelp.ForFilesWithoutConfig))]
    public string? Backbone { get; set; }
    [Option("out-stride", HelpText = "Output stride for weight files that do not say (default: 16).")]
    public int? OutStride { get; set; }
    [Option("num-classes", HelpText = "Number of classes for weight files that do not say (default: the classifier's).")]
    public int? NumClasses { get; set; }
    [Option("device", HelpText = "cpu | cuda | cuda:N (default: cuda when available).")]
    public string? Device { get; set; }
    [Option("threads", HelpText = "CPU threads for libtorch, and for ONNX Runtime with an .onnx model (default: all cores).")]
    public int? Threads { get; set; }
    [Option("precision", Default = "float32", HelpText = "float32 | bf16: bf16 runs the network in bfloat16 (about twice as fast on CPUs with AVX512-BF16); outputs stay float32.")]
    public string Precision { get; set; } = "float32";

    /// <summary>An engine, the class names it predicts, a one-line description, and what to dispose after.</summary>
    internal sealed record OpenModel(ILogitsEngine Engine, IReadOnlyList<string> ClassNames, string Description, IDisposable Owner) : IDisposable
    {
        /// <summary>The network and output stride when the weights say (an ONNX graph does not).</summary>
        public string? Backbone { get; init; }
        public int? OutputStride { get; init; }
        public string EngineName { get; init; } = "torch";
        public string Precision { get; init; } = "float32";

        public void Dispose() => Owner.Dispose();
    }

    /// <summary>--engine, or the file's extension when it is not given.</summary>
    internal static bool UseOnnx(string? engine, string weights) => engine?.Trim().ToLowerInvariant() switch
    {
        null or "" => weights.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase),
        "onnx" => true,
        "torch" or "torchsharp" => weights.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase)
            ? throw new UserException($"--engine torch: {weights} is an ONNX model; TorchSharp runs checkpoints (.safetensors, .pth). Use --engine onnx or leave --engine out")
            : false,
        _ => throw new UserException($"--engine must be torch or onnx, got '{engine}'"),
    };

    internal OpenModel OpenTorch(string weights)
    {
        var device = Engine.SetUp(Device, Threads, log: Loggers.CreateLogger(LogCategories.Runtime));
        var loaded = ModelLoader.LoadForInference(weights, new ModelRequest { Backbone = Backbone, OutputStride = OutStride, NumClasses = NumClasses }, device,
            Loggers.CreateLogger(LogCategories.Checkpoints), PrecisionNames.Parse(Precision));
        return new OpenModel(new TorchLogitsEngine(loaded.Model, device), loaded.ClassNames,
            $"{loaded.Config.Backbone} OS{loaded.Config.OutputStride} (TorchSharp)", loaded)
        {
            Backbone = loaded.Config.Backbone, OutputStride = loaded.Config.OutputStride, Precision = PrecisionNames.Parse(Precision) == Models.Precision.BFloat16 ? "bf16" : "float32",
        };
    }

    /// <summary>ONNX Runtime's CPU build: flags that choose what the graph already fixes, or a GPU, are refused by name.</summary>
    internal OpenModel OpenOnnx(string weights)
    {
        if (Device is { } d && !d.Trim().Equals("cpu", StringComparison.OrdinalIgnoreCase))
            throw new UserException($"--device {d}: the ONNX engine runs on the CPU (Microsoft.ML.OnnxRuntime's CPU package); leave --device out or use a checkpoint");
        if (Backbone is not null) throw new UserException("--backbone does not apply to an ONNX model: the exported graph fixes the backbone");
        if (PrecisionNames.Parse(Precision) != Models.Precision.Float32)
            throw new UserException("--precision bf16 applies to the TorchSharp engine; the exported ONNX graph runs in float32");
        if (OutStride is not null) throw new UserException("--out-stride does not apply to an ONNX model: the exported graph fixes the output stride");
        // libtorch still resizes and averages around the engine: it gets the same thread count.
        Engine.SetThreads(Threads, Loggers.CreateLogger(LogCategories.Runtime));
        var engine = new OnnxLogitsEngine(weights, Threads);
        if (NumClasses is int n && n != engine.NumClasses)
        {
            engine.Dispose();
            throw new UserException($"--num-classes {n}: {weights} predicts {engine.NumClasses} classes");
        }
        var description = Threads is int t ? string.Create(CultureInfo.InvariantCulture, $"{Path.GetFileName(weights)} (ONNX Runtime, {t} intra-op thread{(t == 1 ? "" : "s")})")
            : $"{Path.GetFileName(weights)} (ONNX Runtime)";
        return new OpenModel(engine, ModelLoader.DefaultClassNames(engine.NumClasses), description, engine) { EngineName = "onnx" };
    }
}
