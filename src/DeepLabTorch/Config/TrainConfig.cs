using System.Text.Json.Serialization;

namespace DeepLabTorch.Config;

/// <summary>
/// Everything a training run needs. Defaults are the reference train.py's (null means "decided
/// from the other settings", see <see cref="ConfigLoader.Resolve"/>). JSON files under configs/ use
/// the same names in snake_case; CLI flags use them in kebab-case (--out-stride).
/// </summary>
public sealed record TrainConfig
{
    // Model
    public string Backbone { get; init; } = "resnet";
    public int OutStride { get; init; } = 16;
    public int? NumClasses { get; init; }
    public bool FreezeBn { get; init; }
    public bool SyncBn { get; init; }
    /// <summary>
    /// The ASPP and decoder dropout (0.5, 0.5, 0.1) while training. Config only: false makes a step a
    /// function of the batch alone, for exact comparisons (one process against several).
    /// </summary>
    public bool Dropout { get; init; } = true;

    // Data
    public string Dataset { get; init; } = "pascal";
    public string? DataRoot { get; init; }
    public bool UseSbd { get; init; }
    public int Workers { get; init; } = 4;
    public int BaseSize { get; init; } = 513;
    public int CropSize { get; init; } = 513;
    public bool ValCrop { get; init; }
    public bool GaussianBlur { get; init; }
    public bool SkipBad { get; init; }
    public string[]? ClassNames { get; init; }
    public string TrainSplit { get; init; } = "train";
    public string ValSplit { get; init; } = "val";

    // Optimisation
    public string LossType { get; init; } = "ce";
    /// <summary>The reference divides the (already pixel-averaged) loss by the batch size once more.</summary>
    public bool BatchAverage { get; init; } = true;
    public int? Epochs { get; init; }
    public int StartEpoch { get; init; }
    public int BatchSize { get; init; } = 4;
    public int? TestBatchSize { get; init; }
    public bool UseBalancedWeights { get; init; }
    public double? Lr { get; init; }
    public string LrScheduler { get; init; } = "poly";
    public int LrStep { get; init; }
    public int WarmupIters { get; init; }
    public double HeadLrMultiplier { get; init; } = 10;
    public double Momentum { get; init; } = 0.9;
    public double WeightDecay { get; init; } = 5e-4;
    public bool Nesterov { get; init; }

    // Machine
    public bool NoCuda { get; init; }
    public string GpuIds { get; init; } = "0";
    public string? Device { get; init; }
    public int? Threads { get; init; }
    /// <summary>float32, or bf16: mixed precision (bfloat16 compute over float32 master weights, see Training.MixedPrecision).</summary>
    public string Precision { get; init; } = "float32";
    /// <summary>Store the convolution weights and the input channels-last (NHWC); null: on with bf16 on the CPU, off with float32.</summary>
    public bool? ChannelsLast { get; init; }
    public int Seed { get; init; } = 1;

    // Run control
    public string? Resume { get; init; }
    /// <summary>Weights to start from (our checkpoint, safetensors or a PyTorch .pth/.pth.tar); the schedule starts at 0.</summary>
    public string? InitWeights { get; init; }
    public string? Checkname { get; init; }
    public bool Ft { get; init; }
    public int EvalInterval { get; init; } = 1;
    public bool NoVal { get; init; }
    public string? Output { get; init; }
    public long? MaxIters { get; init; }
    /// <summary>Also write epoch-NNNN.safetensors after every epoch and keep the newest N of them (0: none).</summary>
    public int Keep { get; init; }
    /// <summary>Stop training after this many seconds of training (evaluation excluded); poly/cos then follow the fraction of it spent.</summary>
    public double? TimeBudget { get; init; }
    /// <summary>Iterations between metrics.jsonl lines and TensorBoard loss points.</summary>
    public int LogInterval { get; init; } = 10;
    /// <summary>Validation images shown in TensorBoard and the HTML report.</summary>
    public int VisImages { get; init; } = 4;
    /// <summary>Stop evaluation after this many validation images (null: the whole split).</summary>
    public int? MaxValImages { get; init; }

    /// <summary>Clear the run outputs already in Output before starting (a command-line choice, never recorded).</summary>
    [JsonIgnore] public bool Overwrite { get; init; }

    /// <summary>Base config file (JSON only, one level).</summary>
    [JsonIgnore] public string? Base { get; init; }
}
