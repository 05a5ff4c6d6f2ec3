using DeepLabTorch.Data;

namespace DeepLabTorch.Config;

/// <summary>Fills the "auto" settings the way the reference train.py does and rejects impossible combinations.</summary>
internal static class TrainConfigRules
{
    public static IReadOnlyList<string> Backbones => Models.ModelCatalog.AllNames;

    /// <summary>Reference epochs per data set when --epochs is not given.</summary>
    public static int DefaultEpochs(string dataset) => dataset switch { "synthetic" => 10, Data.Coco.Name => 30, Cityscapes.Name => 200, _ => 50 };

    /// <summary>The reference's base lr for batch 4; the default lr scales it linearly with the batch size.</summary>
    public static double DefaultLr(string dataset) => dataset switch { Data.Coco.Name => 0.1, Cityscapes.Name => 0.01, _ => 0.007 };

    /// <summary>Returns the config with every auto value decided; throws UserException on a bad value or combination.</summary>
    /// <param name="processes">Data-parallel processes: the default lr follows the global batch, processes × --batch-size.</param>
    public static TrainConfig Resolve(TrainConfig c, int processes = 1)
    {
        // Each value on its own, by its declaration (choices and bounds), then the combinations.
        Settings.Check(c);
        var precision = Models.PrecisionNames.Parse(c.Precision);
        if (c.MinScale > c.MaxScale) throw new UserException($"--min-scale {c.MinScale} is above --max-scale {c.MaxScale}");
        foreach (var pair in c.MirrorPairs ?? [])
            if (pair is not { Length: 2 } || pair.Any(v => v is < 0 or > 254))
                throw new UserException("config key 'mirror_pairs' holds pairs of labels, [[left, right], ...], each 0-254");
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
            // The references start from ImageNet on real data; the synthetic and folder sets, and networks without a file, from random weights.
            PretrainedBackbone = c.PretrainedBackbone ?? (c.Dataset is "pascal" or "sbd" or Cityscapes.Name or CelebAMaskHq.Name or Data.Coco.Name
                && Models.PretrainedBackbone.Sources.Any(s => s.Backbone == c.Backbone) ? "auto" : "none"),
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
        MinScale = c.MinScale,
        MaxScale = c.MaxScale,
        ColorJitter = c.ColorJitter,
        MirrorPairs = c.MirrorPairs?.Select(p => ((byte)p[0], (byte)p[1])).ToArray()
            ?? (c.Dataset == CelebAMaskHq.Name ? CelebAMaskHq.MirrorPairs : null),
        ClassNames = c.ClassNames,
    };
}
