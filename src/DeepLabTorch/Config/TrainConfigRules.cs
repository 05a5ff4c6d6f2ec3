using DeepLabTorch.Data;

namespace DeepLabTorch.Config;

/// <summary>Fills the "auto" settings the way the reference train.py does and rejects impossible combinations.</summary>
public static class TrainConfigRules
{
    public static IReadOnlyList<string> Backbones => Models.ModelCatalog.Names;
    public static readonly string[] DatasetNames = { "pascal", "sbd", "folder", "synthetic" };
    public static readonly string[] LossTypes = { "ce", "focal", "dice" };
    public static readonly string[] Schedulers = { "poly", "step", "cos" };

    /// <summary>Reference epochs per data set when --epochs is not given.</summary>
    public static int DefaultEpochs(string dataset) => dataset switch { "synthetic" => 10, _ => 50 };

    /// <summary>The reference's base lr for batch 4; the default lr scales it linearly with the batch size.</summary>
    public static double DefaultLr(string dataset) => 0.007;

    /// <summary>Returns the config with every auto value decided; throws UserException on a bad value or combination.</summary>
    /// <param name="processes">Data-parallel processes: the default lr follows the global batch, processes × --batch-size.</param>
    public static TrainConfig Resolve(TrainConfig c, int processes = 1)
    {
        OneOf("backbone", c.Backbone, Backbones);
        OneOf("dataset", c.Dataset, DatasetNames);
        OneOf("loss-type", c.LossType, LossTypes);
        OneOf("lr-scheduler", c.LrScheduler, Schedulers);
        OneOf("train-split", c.TrainSplit, new[] { "train", "val", "trainval", "trainaug" });
        OneOf("val-split", c.ValSplit, new[] { "train", "val", "trainval", "trainaug" });
        if (c.OutStride is not (8 or 16)) throw new UserException($"--out-stride must be 8 or 16, got {c.OutStride}");
        Positive("batch-size", c.BatchSize);
        Positive("crop-size", c.CropSize);
        Positive("base-size", c.BaseSize);
        Positive("eval-interval", c.EvalInterval);
        Positive("log-interval", c.LogInterval);
        if (c.Workers < 0) throw new UserException($"--workers must be >= 0, got {c.Workers}");
        if (c.Epochs is { } e) Positive("epochs", e);
        if (c.TestBatchSize is { } tb) Positive("test-batch-size", tb);
        if (c.Threads is { } th) Positive("threads", th);
        var precision = Models.PrecisionNames.Parse(c.Precision);
        if (c.MaxIters is { } mi && mi < 1) throw new UserException($"--max-iters must be >= 1, got {mi}");
        if (c.NumClasses is { } nc && (nc < 2 || nc > 255)) throw new UserException($"--num-classes must be between 2 and 255, got {nc}");
        if (c.MaxValImages is { } mv) Positive("max-val-images", mv);
        if (c.TimeBudget is { } tb2 && !(tb2 > 0 && double.IsFinite(tb2))) throw new UserException($"--time-budget must be a positive number of seconds, got {tb2}");
        if (c.Lr is { } lr && !(lr > 0 && double.IsFinite(lr))) throw new UserException($"--lr must be a positive number, got {lr}");
        if (!(c.Momentum >= 0 && c.Momentum < 1)) throw new UserException($"--momentum must be in [0, 1), got {c.Momentum}");
        if (!(c.WeightDecay >= 0)) throw new UserException($"--weight-decay must be >= 0, got {c.WeightDecay}");
        if (c.Keep < 0) throw new UserException($"--keep must be 0 or more, got {c.Keep}");
        if (c.WarmupIters < 0) throw new UserException($"--warmup-iters must be >= 0, got {c.WarmupIters}");
        if (c.Nesterov && c.Momentum == 0) throw new UserException("--nesterov needs a momentum above 0");
        if (c.LrScheduler == "step" && c.LrStep <= 0) throw new UserException("--lr-scheduler step needs --lr-step N (epochs between 10x decays)");
        if (c.UseSbd && c.Dataset != "pascal") throw new UserException($"--use-sbd adds SBD to pascal training; it makes no sense with --dataset {c.Dataset}");
        if (c.InitWeights != null && c.Resume != null) throw new UserException("--init-weights and --resume both say where to start: give one (--resume continues a run, --init-weights starts a new one from weights)");
        if (c.Ft && c.Resume is null) throw new UserException("--ft fine-tunes from a checkpoint; give it with --resume PATH");
        if (c.LossType == "dice" && c.NumClasses is > 2) throw new UserException("--loss-type dice is for binary segmentation (2 classes)");
        if (c.ValCrop && c.NoVal) throw new UserException("--val-crop and --no-val together make no sense");
        if (c.Device is { } dev && dev.StartsWith("cuda", StringComparison.Ordinal) && c.NoCuda)
            throw new UserException($"--no-cuda and --device {dev} contradict each other");
        if (c.Device is { } d2 && d2 != "cpu" && !d2.StartsWith("cuda", StringComparison.Ordinal))
            throw new UserException($"--device must be cpu, cuda or cuda:N, got '{d2}'");
        foreach (var id in c.GpuIds.Split(',', StringSplitOptions.TrimEntries))
            if (!int.TryParse(id, out var g) || g < 0)
                throw new UserException($"--gpu-ids must be a comma-separated list of integers, got '{c.GpuIds}'");

        // With a time budget the clock ends the run; the epoch count only bounds it.
        var epochs = c.Epochs ?? (c.TimeBudget is null ? DefaultEpochs(c.Dataset) : 100_000);
        if (c.StartEpoch < 0 || c.StartEpoch >= epochs)
            throw new UserException($"--start-epoch must be in [0, {epochs}) for {epochs} epochs, got {c.StartEpoch}");
        var checkname = c.Checkname ?? "deeplab-" + c.Backbone;
        return c with
        {
            Epochs = epochs,
            Lr = c.Lr ?? DefaultLr(c.Dataset) / 4 * c.BatchSize * Math.Max(1, processes),
            TestBatchSize = c.TestBatchSize ?? 1,
            Precision = precision == Models.Precision.BFloat16 ? "bf16" : "float32",
            Checkname = checkname,
            Output = c.Output ?? Path.Combine("checkpoints", $"{c.Dataset}-{c.Backbone}-{checkname}"),
        };
    }

    /// <summary>The data engineer's options for this run.</summary>
    public static DataOptions ToDataOptions(TrainConfig c) => new()
    {
        Dataset = c.Dataset,
        DataRoot = c.DataRoot,
        UseSbd = c.UseSbd,
        BaseSize = c.BaseSize,
        CropSize = c.CropSize,
        Workers = c.Workers,
        Seed = c.Seed,
        ValCrop = c.ValCrop,
        SkipBad = c.SkipBad,
        GaussianBlur = c.GaussianBlur,
        ClassNames = c.ClassNames,
    };

    private static void OneOf(string flag, string value, IReadOnlyList<string> allowed)
    {
        if (!allowed.Contains(value)) throw new UserException($"--{flag} must be one of {string.Join(", ", allowed)}, got '{value}'");
    }

    private static void Positive(string flag, int v)
    {
        if (v < 1) throw new UserException($"--{flag} must be >= 1, got {v}");
    }
}
