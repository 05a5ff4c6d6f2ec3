using CommandLine;

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
}
