using System.Globalization;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Config;
using DeepLabTorch.Data;
using DeepLabTorch.Distributed;
using DeepLabTorch.Models;
using DeepLabTorch.Runtime;
using Microsoft.Extensions.Logging;
using TorchSharp;
using SGD = TorchSharp.Modules.SGD;
using static TorchSharp.torch;

namespace DeepLabTorch.Training;

/// <summary>
/// Everything a run trains with, set up in the order that keeps failures cheap: data, then the model
/// and any weights to start from, then the optimizer (after the model is on its device: Module.to
/// replaces Parameter objects), and only then the run folder, so a typo in --data-root or a bad
/// --init-weights/--resume file leaves nothing behind.
/// </summary>
internal sealed class TrainingSession : IDisposable
{
    private TrainingSession(TrainConfig config, Device device, ISegmentationDataset trainSet, ISegmentationDataset? valSet,
        DataLoader trainLoader, DataLoader? valLoader, int numClasses, string[] classNames, DataParallel parallel)
    {
        Parallel = parallel;
        Config = config;
        Device = device;
        TrainSet = trainSet;
        ValSet = valSet;
        TrainLoader = trainLoader;
        ValLoader = valLoader;
        NumClasses = numClasses;
        ClassNames = classNames;
    }

    public TrainConfig Config { get; }
    public Device Device { get; }
    public ISegmentationDataset TrainSet { get; }
    public ISegmentationDataset? ValSet { get; }
    public DataLoader TrainLoader { get; }
    /// <summary>This process's block of the validation split (all of it on one process; null when the block is empty).</summary>
    public DataLoader? ValLoader { get; }
    /// <summary>The images of the validation split this process evaluates (--max-val-images applied).</summary>
    public ISegmentationDataset? ValBlock { get; private init; }
    /// <summary>The processes of the run (one, unless started by mpirun or srun) and the collectives between them.</summary>
    public DataParallel Parallel { get; }
    public int NumClasses { get; }
    public string[] ClassNames { get; }
    public SegmentationModel Model { get; private set; } = null!;

    /// <summary>What --pretrained-backbone loaded into a new run (null: nothing, or a continued run).</summary>
    public PretrainedReport? Pretrained { get; private set; }
    public SGD Optimizer { get; private set; } = null!;
    public Func<Tensor, Tensor, Tensor> Criterion { get; private set; } = null!;
    public LrScheduler Scheduler { get; private set; } = null!;
    /// <summary>float32, or bf16 mixed precision (--precision), and the memory format of weights and input.</summary>
    public MixedPrecision Precision { get; private set; } = MixedPrecision.Float32;
    public int Epochs => Config.Epochs!.Value;
    public int ItersPerEpoch => TrainLoader.BatchesPerEpoch;
    public string OutputDir => Config.Output!;
    /// <summary>Where the run starts: the epoch, the batch within it, the best score so far and its epoch, and the iteration count.</summary>
    public (int Epoch, int Batch, double Best, int BestEpoch, long Step) Start { get; private set; }
    private Tensor? _classWeights;
    /// <summary>Where set-up reports (category DeepLabTorch.Training) and where weight loading notes go (DeepLabTorch.Checkpoints).</summary>
    private ILogger _log = null!, _weightsLog = null!;

    /// <param name="loggers">Where set-up messages go, each area under its category (training, data, checkpoints, the CPU-kernel guard).</param>
    /// <param name="group">The processes of the run; rank 0 alone checks and writes the run folder.</param>
    /// <param name="progress">Where a download of the ImageNet backbone reports (the trainer's progress renderer).</param>
    public static TrainingSession Open(TrainConfig c, ILoggerFactory loggers, CancellationToken ct, ProcessGroup? group = null, IProgress<ProgressReport>? progress = null)
    {
        group ??= ProcessGroup.Single;
        var log = loggers.CreateLogger(LogCategories.Training);
        var dataLog = loggers.CreateLogger(LogCategories.Data);
        if (group.IsRoot) RunFolder.Check(c);
        var device = ResolveDevice(c, group);
        // Processes that share a machine share its cores: by default each takes its part.
        Engine.SetThreads(c.Threads ?? (group.LocalSize > 1 ? Math.Max(1, Environment.ProcessorCount / group.LocalSize) : null),
            loggers.CreateLogger(LogCategories.Runtime));
        manual_seed(c.Seed);
        log.LogInformation("train: {Backbone} OS{OutputStride} on {Dataset} ({Device}, {Threads} threads); output {Output}",
            c.Backbone, c.OutStride, c.Dataset, device.ToString(), get_num_threads(), c.Output);
        if (c.SyncBn && !group.IsDistributed) log.LogInformation("note: --sync-bn has no effect on one process (it synchronises BatchNorm across the processes of mpirun or srun)");

        var dataOptions = TrainConfigRules.ToDataOptions(c);
        // Rank 0 first: opening the synthetic set generates it on first use.
        var (trainSet, valSet) = group.RootFirst(() =>
            (Datasets.Open(dataOptions, c.TrainSplit, dataLog, progress), c.NoVal ? null : Datasets.Open(dataOptions, c.ValSplit, dataLog, progress)));
        var numClasses = c.NumClasses ?? trainSet.NumClasses;
        if (numClasses < trainSet.NumClasses)
            throw new UserException($"--num-classes {numClasses} is fewer than the {trainSet.NumClasses} classes of {trainSet.Name} (its labels go up to {trainSet.NumClasses - 1}); " +
                "leave --num-classes out to use the data set's count");
        var classNames = trainSet.ClassNames.Count == numClasses ? trainSet.ClassNames.ToArray()
            : Enumerable.Range(0, numClasses).Select(i => $"class {i}").ToArray();
        if (c.LossType == "dice" && numClasses != 2) throw new UserException($"--loss-type dice is for binary segmentation; {trainSet.Name} has {numClasses} classes");
        if (group.IsRoot && !c.SkipBad) LabelCheck.Run(trainSet, numClasses);
        if (c.BatchSize * (c.SyncBn ? group.Size : 1) < 2 && !c.FreezeBn)
            throw new UserException("--batch-size 1 cannot train BatchNorm (it needs at least 2 images per batch); use a larger batch or --freeze-bn" +
                (group.IsDistributed ? ", or --sync-bn, which normalises over the batches of all processes" : ""));
        var trainLoader = new DataLoader(trainSet, dataOptions, train: true, c.BatchSize, new DataShard(group.Rank, group.Size), dataLog);
        // Evaluation is sharded by blocks of the split; the confusion matrices are summed afterwards.
        var valBlock = valSet is null ? null : ShardedDataset.Block(valSet, group.Rank, group.Size, c.MaxValImages);
        // A process whose block is empty (fewer images than processes) evaluates nothing but still sums its zero counts.
        var valLoader = valBlock is null || valBlock.Count == 0 && group.IsDistributed ? null
            : new DataLoader(valBlock, dataOptions, train: false, c.TestBatchSize ?? 1, log: dataLog);
        var session = new TrainingSession(c, device, trainSet, valSet, trainLoader, valLoader, numClasses, classNames, new DataParallel(group))
        {
            ValBlock = valBlock, _log = log, _weightsLog = loggers.CreateLogger(LogCategories.Checkpoints),
        };
        try
        {
            var batches = group.IsDistributed ? $"{session.ItersPerEpoch} global batches of {group.Size} × {c.BatchSize}" : $"{session.ItersPerEpoch} batches of {c.BatchSize}";
            var validation = valSet is null ? "no validation" : $"{valSet.Count} validation images";
            log.LogInformation("data: {Dataset} {TrainImages} training images ({Batches}), {Validation}, {Classes} classes",
                trainSet.Name, trainSet.Count, batches, validation, numClasses);
            session.SetUpModel(progress);
            if (group.IsRoot)
            {
                // Cleared only now: a start that fails on its data or weights leaves the old run as it was.
                if (c.Overwrite && !RunFolder.Continues(c) && RunFolder.Clear(c.Output!) is { Count: > 0 } removed)
                    log.LogInformation("--overwrite: removed {Files} from {Output}", string.Join(", ", removed), c.Output);
                Directory.CreateDirectory(c.Output!);
                // The file auto found (or downloaded) is recorded, not "auto": the run says what it started from.
                ConfigLoader.Save(session.Pretrained is { } p ? c with { PretrainedBackbone = p.File } : c, Path.Combine(c.Output!, "config.json"));
            }
            session.SetUpLoss(ct);
            return session;
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    private void SetUpModel(IProgress<ProgressReport>? progress)
    {
        var c = Config;
        if (c.InitWeights is { } iw && !File.Exists(iw)) throw new UserException($"--init-weights: no file at '{iw}'");
        if (c.Resume is { } rs && !File.Exists(rs)) throw new UserException($"--resume: no checkpoint found at '{rs}'");
        Model = c.InitWeights is { } init ? InitFrom(init) : ModelFactory.Build(new ModelConfig(c.Backbone, c.OutStride, NumClasses));
        // A new run from random weights starts its backbone from ImageNet, as the reference does (never silently from noise).
        if (c.InitWeights is null && c.Resume is null && c.PretrainedBackbone is { } spec && spec != "none")
        {
            if (PretrainedBackbone.BackbonePrefix(Model) is null)
                throw new UserException($"--pretrained-backbone: {c.Backbone} has no ImageNet backbone file here; train it with --pretrained-backbone none");
            if (PretrainedBackbone.Resolve(spec, c.Backbone, _weightsLog, progress) is { } pretrained)
                Pretrained = PretrainedBackbone.Load(Model, pretrained, _weightsLog);
        }
        Model.FreezeBatchNorm = c.FreezeBn;
        if (!c.Dropout)
            foreach (var m in Model.modules().OfType<TorchSharp.Modules.Dropout>()) m.p = 0;
        Model.to(Device);
        var precision = PrecisionNames.Parse(c.Precision);
        // Channels-last pays with bfloat16 on the CPU (oneDNN's bf16 kernels are NHWC) and not with float32,
        // where the backward pass was slower (docs/performance.md).
        Precision = MixedPrecision.For(precision, c.ChannelsLast ?? (precision == Models.Precision.BFloat16 && Device.type == DeviceType.CPU));
        Precision.Prepare(Model);
        if (Precision != MixedPrecision.Float32) _log.LogInformation("precision: {Precision}", Precision.Name);
        Optimizer = SgdFactory.Create(Model, c.Lr!.Value, c.Momentum, c.WeightDecay, c.Nesterov, c.HeadLrMultiplier, c.DecayNormAndBias);
        Start = (c.StartEpoch, 0, double.NaN, -1, 0);
        if (c.Resume is { } resume)
        {
            Start = Resume(resume);
            if (Start.Batch >= ItersPerEpoch) Start = Start with { Epoch = Start.Epoch + 1, Batch = 0 };
            if (Start.Batch > 0)
                _log.LogInformation("resume: continuing epoch {Epoch} at batch {Batch} of {Batches}", Start.Epoch + 1, Start.Batch + 1, ItersPerEpoch);
        }
        if (Device.type == DeviceType.CUDA && Parallel.IsDistributed) Parallel.Group.UseCuda(Device.index);
        Parallel.Attach(Model, c.SyncBn, c.Seed, _log);
    }

    /// <summary>
    /// The device; on several processes with CUDA, each process on a machine takes its own GPU from
    /// --gpu-ids (by its rank on the machine), unless --device names one.
    /// </summary>
    private static Device ResolveDevice(TrainConfig c, ProcessGroup group)
    {
        var device = Engine.ResolveDevice(c.Device, c.NoCuda, c.GpuIds);
        if (device.type != DeviceType.CUDA || !group.IsDistributed || c.Device is { } d && d.Contains(':')) return device;
        var ids = c.GpuIds.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(i => int.Parse(i, CultureInfo.InvariantCulture)).ToArray();
        if (ids.Length < group.LocalSize)
            throw new UserException($"{group.LocalSize} processes on this machine need one GPU each, but --gpu-ids lists {ids.Length} ({c.GpuIds})");
        return new Device(DeviceType.CUDA, ids[group.LocalRank]);
    }

    private void SetUpLoss(CancellationToken ct)
    {
        var c = Config;
        if (c.UseBalancedWeights)
        {
            var cacheDir = c.DataRoot ?? (c.Dataset == "synthetic" ? Datasets.DefaultSyntheticRoot : OutputDir);
            var cache = Path.Combine(cacheDir, $"{c.Dataset}_{c.TrainSplit}{(c.UseSbd ? "+sbd" : "")}_classes_weights.json");
            var w = Parallel.Group.RootFirst(() => ClassWeights.LoadOrCompute(TrainSet, NumClasses, cache, _log, ct));
            _classWeights = tensor(w.Select(x => (float)x).ToArray()).to(Device).DetachFromDisposeScope();
            _log.LogInformation("class weights: {Weights}", string.Join(" ", w.Select(x => x.ToString("0.00", CultureInfo.InvariantCulture))));
        }
        Criterion = Losses.Build(c.LossType, _classWeights, 255, c.BatchAverage, Parallel.Size, c.OhemThreshold, c.OhemMinKept);
        Scheduler = new LrScheduler(c.LrScheduler, c.Lr!.Value, Epochs, ItersPerEpoch, c.LrStep, c.WarmupIters, 0.9, c.HeadLrMultiplier, c.WarmupStartLr);
    }

    /// <summary>--init-weights: the model built from any weight file; only the classifier may differ (it is re-initialised).</summary>
    private SegmentationModel InitFrom(string path)
    {
        var c = Config;
        // Our checkpoints say what they hold: a different backbone or output stride is named, not guessed at.
        var loaded = ModelLoader.Load(path, new ModelRequest { Backbone = c.Backbone, OutputStride = c.OutStride, NumClasses = NumClasses, NewClassifier = true }, _weightsLog);
        var report = loaded.Report;
        if (report.Reinitialised.Count > 0)
            _log.LogInformation("init: {Tensors} tensors from {Path}; classifier re-initialised for {Classes} classes", report.Loaded.Count, path, NumClasses);
        else
            _log.LogInformation("init: {Tensors} tensors from {Path}", report.Loaded.Count, path);
        return loaded.Model;
    }

    /// <summary>A --resume file (checked to exist): our checkpoint (weights, and optimizer unless --ft) or any weight file (weights only).</summary>
    private (int, int, double, int, long) Resume(string path)
    {
        var c = Config;
        var info = CheckpointStore.ReadInfo(path);
        if (info is null)
        {
            // A reference .pth or plain safetensors: weights only (the classifier is re-initialised for another class count).
            StateDictLoader.LoadFile(Model, path, FineTuning(), out _);
            _log.LogInformation("resume: loaded weights from {Path}; starting at epoch {Epoch}", path, c.StartEpoch + 1);
            return (c.StartEpoch, 0, double.NaN, -1, 0);
        }
        if (c.Ft)
        {
            StateDictLoader.LoadFile(Model, path, FineTuning(), out _);
            _log.LogInformation("fine-tuning from {Path} (trained {Epochs} epochs); optimizer state not restored, starting at epoch 1", path, info.Epoch);
            return (0, 0, double.NaN, -1, 0);
        }
        var loaded = CheckpointStore.Load(path, Model, Optimizer, keys: Model.LoadKeys());
        var wrote = loaded.Scheduler is { } sched && sched.TryGetValue("processes", out var np) ? (int)np : 1;
        if (loaded.EpochIteration > 0 && wrote != Parallel.Size)
            _log.LogInformation("resume: {Path} was written by {WrittenBy} process(es) and this run has {Processes}: the rest of epoch {Epoch} " +
                "is cut into other global batches than an uninterrupted run's (later epochs are unaffected)", path, wrote, Parallel.Size, loaded.Epoch + 1);
        var bestText = double.IsNaN(loaded.BestMIoU) ? "n/a" : (100 * loaded.BestMIoU).ToString("0.00", CultureInfo.InvariantCulture) + "%";
        _log.LogInformation("resume: {Path} after epoch {Epoch} (iteration {Iteration}, best mIoU {BestMIoU})", path, loaded.Epoch, loaded.Iteration, bestText);
        return (loaded.Epoch, loaded.EpochIteration, loaded.BestMIoU, double.IsNaN(loaded.BestMIoU) ? -1 : loaded.Epoch - 1, loaded.Iteration);
    }

    /// <summary>Weights only, into the model built for this run: a classifier for another class count is re-initialised.</summary>
    private StateDictLoadOptions FineTuning() =>
        new() { Keys = Model.LoadKeys(), Classifier = ClassifierRule.ReinitialiseIfDifferent, Logger = _weightsLog };

    public void Dispose()
    {
        _classWeights?.Dispose();
        Parallel.Dispose();
        Optimizer?.Dispose();
        Model?.Dispose();
        ValLoader?.Dispose();
        TrainLoader.Dispose();
    }
}
