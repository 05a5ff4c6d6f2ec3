using System.Globalization;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Config;
using DeepLabTorch.Data;
using DeepLabTorch.Models;
using DeepLabTorch.Runtime;
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
        DataLoader trainLoader, DataLoader? valLoader, int numClasses, string[] classNames)
    {
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
    public DataLoader? ValLoader { get; }
    public int NumClasses { get; }
    public string[] ClassNames { get; }
    public DeepLabV3Plus Model { get; private set; } = null!;
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

    public static TrainingSession Open(TrainConfig c, Action<string> log, CancellationToken ct)
    {
        RunFolder.Check(c);
        var device = Engine.ResolveDevice(c.Device, c.NoCuda, c.GpuIds);
        Engine.SetThreads(c.Threads);
        manual_seed(c.Seed);
        log($"train: {c.Backbone} OS{c.OutStride} on {c.Dataset} ({device}, {get_num_threads()} threads); output {c.Output}");
        if (c.SyncBn) log("note: --sync-bn has no effect: this trainer runs one process on one device");

        var dataOptions = TrainConfigRules.ToDataOptions(c);
        var trainSet = Datasets.Open(dataOptions, c.TrainSplit);
        var valSet = c.NoVal ? null : Datasets.Open(dataOptions, c.ValSplit);
        var numClasses = c.NumClasses ?? trainSet.NumClasses;
        if (numClasses < trainSet.NumClasses)
            throw new UserException($"--num-classes {numClasses} is fewer than the {trainSet.NumClasses} classes of {trainSet.Name} (its labels go up to {trainSet.NumClasses - 1}); " +
                "leave --num-classes out to use the data set's count");
        var classNames = trainSet.ClassNames.Count == numClasses ? trainSet.ClassNames.ToArray()
            : Enumerable.Range(0, numClasses).Select(i => $"class {i}").ToArray();
        if (c.LossType == "dice" && numClasses != 2) throw new UserException($"--loss-type dice is for binary segmentation; {trainSet.Name} has {numClasses} classes");
        if (c.BatchSize < 2 && !c.FreezeBn)
            throw new UserException("--batch-size 1 cannot train BatchNorm (it needs at least 2 images per batch); use a larger batch or --freeze-bn");
        var trainLoader = new DataLoader(trainSet, dataOptions, train: true, c.BatchSize);
        var valLoader = valSet is null ? null : new DataLoader(valSet, dataOptions, train: false, c.TestBatchSize ?? 1);
        var session = new TrainingSession(c, device, trainSet, valSet, trainLoader, valLoader, numClasses, classNames);
        try
        {
            log($"data: {trainSet.Name} {trainSet.Count} training images ({session.ItersPerEpoch} batches of {c.BatchSize}), " +
                (valSet is null ? "no validation" : $"{valSet.Count} validation images") + $", {numClasses} classes");
            session.SetUpModel(log);
            // Cleared only now: a start that fails on its data or weights leaves the old run as it was.
            if (c.Overwrite && !RunFolder.Continues(c) && RunFolder.Clear(c.Output!) is { Count: > 0 } removed)
                log($"--overwrite: removed {string.Join(", ", removed)} from {c.Output}");
            Directory.CreateDirectory(c.Output!);
            ConfigLoader.Save(c, Path.Combine(c.Output!, "config.json"));
            session.SetUpLoss(log, ct);
            return session;
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    private void SetUpModel(Action<string> log)
    {
        var c = Config;
        if (c.InitWeights is { } iw && !File.Exists(iw)) throw new UserException($"--init-weights: no file at '{iw}'");
        if (c.Resume is { } rs && !File.Exists(rs)) throw new UserException($"--resume: no checkpoint found at '{rs}'");
        Model = c.InitWeights is { } init ? InitFrom(init, log) : ModelFactory.Create(new ModelConfig(c.Backbone, c.OutStride, NumClasses));
        Model.FreezeBatchNorm = c.FreezeBn;
        Model.to(Device);
        var precision = PrecisionNames.Parse(c.Precision);
        // Channels-last pays with bfloat16 on the CPU (oneDNN's bf16 kernels are NHWC) and not with float32,
        // where the backward pass was slower (docs/performance.md).
        Precision = MixedPrecision.For(precision, c.ChannelsLast ?? (precision == Models.Precision.BFloat16 && Device.type == DeviceType.CPU));
        Precision.Prepare(Model);
        if (Precision != MixedPrecision.Float32) log($"precision: {Precision.Name}");
        Optimizer = SgdFactory.Create(Model, c.Lr!.Value, c.Momentum, c.WeightDecay, c.Nesterov, c.HeadLrMultiplier);
        Start = (c.StartEpoch, 0, double.NaN, -1, 0);
        if (c.Resume is { } resume)
        {
            Start = Resume(resume, log);
            if (Start.Batch >= ItersPerEpoch) Start = Start with { Epoch = Start.Epoch + 1, Batch = 0 };
            if (Start.Batch > 0) log($"resume: continuing epoch {Start.Epoch + 1} at batch {Start.Batch + 1} of {ItersPerEpoch}");
        }
    }

    private void SetUpLoss(Action<string> log, CancellationToken ct)
    {
        var c = Config;
        if (c.UseBalancedWeights)
        {
            var cacheDir = c.DataRoot ?? (c.Dataset == "synthetic" ? Datasets.DefaultSyntheticRoot : OutputDir);
            var cache = Path.Combine(cacheDir, $"{c.Dataset}_{c.TrainSplit}{(c.UseSbd ? "+sbd" : "")}_classes_weights.json");
            var w = ClassWeights.LoadOrCompute(TrainSet, NumClasses, cache, log, ct);
            _classWeights = tensor(w.Select(x => (float)x).ToArray()).to(Device).DetachFromDisposeScope();
            log("class weights: " + string.Join(" ", w.Select(x => x.ToString("0.00", CultureInfo.InvariantCulture))));
        }
        Criterion = Losses.Build(c.LossType, _classWeights, 255, c.BatchAverage);
        Scheduler = new LrScheduler(c.LrScheduler, c.Lr!.Value, Epochs, ItersPerEpoch, c.LrStep, c.WarmupIters, 0.9, c.HeadLrMultiplier);
    }

    /// <summary>--init-weights: the model built from any weight file; only the classifier may differ (it is re-initialised).</summary>
    private DeepLabV3Plus InitFrom(string path, Action<string> log)
    {
        var c = Config;
        // Our checkpoints say what they hold: a different backbone or output stride is named, not guessed at.
        var loaded = ModelLoader.Load(path, new ModelRequest { Backbone = c.Backbone, OutputStride = c.OutStride, NumClasses = NumClasses, NewClassifier = true }, log);
        var report = loaded.Report;
        log($"init: {report.Loaded.Count} tensors from {path}" +
            (report.Reinitialised.Count > 0 ? $"; classifier re-initialised for {NumClasses} classes" : ""));
        return loaded.Model;
    }

    /// <summary>A --resume file (checked to exist): our checkpoint (weights, and optimizer unless --ft) or any weight file (weights only).</summary>
    private (int, int, double, int, long) Resume(string path, Action<string> log)
    {
        var c = Config;
        var info = CheckpointStore.ReadInfo(path);
        if (info is null)
        {
            // A reference .pth or plain safetensors: weights only (the classifier is re-initialised for another class count).
            WeightLoader.LoadInto(Model, path, NumClasses, Model.ClassifierPrefix, log, ModelCatalog.Get(c.Backbone).AliasMap);
            log($"resume: loaded weights from {path}; starting at epoch {c.StartEpoch + 1}");
            return (c.StartEpoch, 0, double.NaN, -1, 0);
        }
        if (c.Ft)
        {
            WeightLoader.LoadInto(Model, path, NumClasses, Model.ClassifierPrefix, log);
            log($"fine-tuning from {path} (trained {info.Epoch} epochs); optimizer state not restored, starting at epoch 1");
            return (0, 0, double.NaN, -1, 0);
        }
        var loaded = CheckpointStore.Load(path, Model, Optimizer);
        var bestText = double.IsNaN(loaded.BestMIoU) ? "n/a" : (100 * loaded.BestMIoU).ToString("0.00", CultureInfo.InvariantCulture) + "%";
        log($"resume: {path} after epoch {loaded.Epoch} (iteration {loaded.Iteration}, best mIoU {bestText})");
        return (loaded.Epoch, loaded.EpochIteration, loaded.BestMIoU, double.IsNaN(loaded.BestMIoU) ? -1 : loaded.Epoch - 1, loaded.Iteration);
    }

    public void Dispose()
    {
        _classWeights?.Dispose();
        Optimizer?.Dispose();
        Model?.Dispose();
        ValLoader?.Dispose();
        TrainLoader.Dispose();
    }
}
