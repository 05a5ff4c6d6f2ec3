using System.Text.Json;
using System.Text.Json.Serialization;

namespace DeepLabTorch.Checkpoints;

/// <summary>The model a checkpoint holds: enough to rebuild it without flags.</summary>
internal sealed record CheckpointModel(string Backbone, int OutputStride, int NumClasses, IReadOnlyList<string>? ClassNames = null);

/// <summary>The random state a resumed run needs: libtorch's CPU generator plus the data seeds.</summary>
internal sealed record CheckpointRng
{
    /// <summary>torch.get_rng_state() bytes; stored as the tensor "rng.torch", not in the JSON.</summary>
    [JsonIgnore] public byte[]? Torch { get; init; }
    /// <summary>Seed of the data order (shuffle) and of the augmentations, as DataOptions.Seed and friends.</summary>
    public long DataSeed { get; init; }
    public long AugmentationSeed { get; init; }
    /// <summary>Any further named seeds or counters the trainer wants back.</summary>
    public IReadOnlyDictionary<string, long>? Extra { get; init; }
}

/// <summary>
/// Everything in a checkpoint besides the tensors. Stored as JSON in the safetensors header's
/// __metadata__ under "deeplabtorch" (with "format_version" beside it for quick checks).
/// </summary>
internal sealed record CheckpointInfo
{
    public const int CurrentFormatVersion = 1;

    public int FormatVersion { get; init; } = CurrentFormatVersion;
    public CheckpointModel? Model { get; init; }
    /// <summary>The resolved training configuration as JSON (the trainer's own record, serialized).</summary>
    public string? TrainingConfigJson { get; init; }
    /// <summary>Epochs completed, and optimizer steps taken, when the checkpoint was written.</summary>
    public int Epoch { get; init; }
    public long Iteration { get; init; }
    /// <summary>
    /// Batches already trained in epoch Epoch + 1 when a run stopped mid-epoch (--max-iters,
    /// --time-budget, Ctrl+C); 0 at an epoch boundary. A resumed run starts at that batch.
    /// </summary>
    public int EpochIteration { get; init; }
    /// <summary>Best validation mIoU so far (NaN when never evaluated).</summary>
    public double BestMIoU { get; init; } = double.NaN;
    /// <summary>LR-scheduler position and parameters (e.g. "step", "total_steps", "base_lr").</summary>
    public IReadOnlyDictionary<string, double>? Scheduler { get; init; }
    public CheckpointRng? Rng { get; init; }
    /// <summary>Optimizer scalars (steps, group learning rates); filled by CheckpointStore.</summary>
    public IReadOnlyDictionary<string, double>? OptimizerScalars { get; init; }
    /// <summary>The ImageNet file the run's backbone started from and its SHA-256 ("PATH sha256:HEX"); null when none.</summary>
    public string? PretrainedBackbone { get; init; }
    /// <summary>Where the file came from: "deeplabtorch", "pytorch-reference", "pytorch-port", "pytorch-state-dict", "safetensors".</summary>
    public string Source { get; init; } = "deeplabtorch";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = false,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static CheckpointInfo FromJson(string json, string path)
    {
        try
        {
            var info = JsonSerializer.Deserialize<CheckpointInfo>(json, Json)
                ?? throw new CheckpointException(path, "checkpoint metadata is null");
            if (info.FormatVersion > CurrentFormatVersion)
                throw new CheckpointException(path, $"checkpoint format version {info.FormatVersion} is newer than this program understands ({CurrentFormatVersion})");
            if (info.FormatVersion < 1)
                throw new CheckpointException(path, $"invalid checkpoint format version {info.FormatVersion}");
            return info;
        }
        catch (JsonException e)
        {
            throw new CheckpointException(path, "checkpoint metadata is not valid: " + e.Message);
        }
    }
}
