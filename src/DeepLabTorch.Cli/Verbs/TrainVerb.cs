using System.Text.Json;
using CommandLine;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Config;
using DeepLabTorch.Data;
using DeepLabTorch.Distributed;
using DeepLabTorch.Runtime;
using DeepLabTorch.Training;
using Microsoft.Extensions.Logging;
using DeepLabTorch.Cli.Progress;

namespace DeepLabTorch.Cli.Verbs;

[Verb("train", HelpText = "Train DeepLabV3+ with the reference recipe (SGD, poly LR, head at 10x). Flags and defaults follow the reference " +
    "train.py; differences: validation runs on full-size images (--val-crop for the reference's centre crop), --use-sbd is off by default, " +
    "and the default backbone is resnet as in the reference (use --backbone mobilenet on a CPU).")]
public sealed class TrainVerb : VerbBase
{
    [Option("config", HelpText = "JSON config (e.g. configs/voc-mobilenet-os16.json); flags given here override it; unknown keys are errors.")]
    public string? ConfigFile { get; set; }

    // Model
    [Option("backbone", ResourceType = typeof(BackboneHelp), HelpText = nameof(BackboneHelp.Train))]
    public string? Backbone { get; set; }
    [Option("out-stride", HelpText = "Output stride 8 or 16 (default: 16).")]
    public int? OutStride { get; set; }
    [Option("num-classes", HelpText = "Number of classes (default: the data set's).")]
    public int? NumClasses { get; set; }
    [Option("sync-bn", HelpText = "On several processes (mpirun, srun, --nproc): BatchNorm normalises over the global batch of all of them, forward and backward. No effect on one process.")]
    public bool SyncBn { get; set; }
    [Option("freeze-bn", HelpText = "Keep every BatchNorm in eval mode while training.")]
    public bool FreezeBn { get; set; }

    // Data
    [Option("dataset", HelpText = "pascal | sbd | folder | synthetic (default: pascal). synthetic generates data/synthetic on first use.")]
    public string? Dataset { get; set; }
    [Option("data-root", HelpText = "Data set folder (VOCdevkit parent for pascal; required except for synthetic).")]
    public string? DataRoot { get; set; }
    [Option("use-sbd", HelpText = "Add SBD to the pascal training set (trainaug). Off by default here; the reference always adds it.")]
    public bool UseSbd { get; set; }
    [Option("workers", HelpText = "Data loader threads (default: 4).")]
    public int? Workers { get; set; }
    [Option("base-size", HelpText = "Base image size for the random rescale (default: 513).")]
    public int? BaseSize { get; set; }
    [Option("crop-size", HelpText = "Training crop size (default: 513).")]
    public int? CropSize { get; set; }
    [Option("val-crop", HelpText = "Validate on the reference's fixed centre crop instead of full images.")]
    public bool ValCrop { get; set; }
    [Option("skip-bad", HelpText = "Skip unreadable samples (reported) instead of stopping.")]
    public bool SkipBad { get; set; }

    // Optimisation
    [Option("loss-type", HelpText = "ce | focal | dice (default: ce; dice is for 2 classes).")]
    public string? LossType { get; set; }
    [Option("epochs", HelpText = "Epochs (default: 50 for pascal/sbd/folder, 10 for synthetic).")]
    public int? Epochs { get; set; }
    [Option("start-epoch", HelpText = "Epoch to start at (default: 0; --resume sets it from the checkpoint).")]
    public int? StartEpoch { get; set; }
    [Option("batch-size", HelpText = "Training batch size (default: 4).")]
    public int? BatchSize { get; set; }
    [Option("test-batch-size", HelpText = "Validation batch size (default: 1, since full-size images differ in size).")]
    public int? TestBatchSize { get; set; }
    [Option("use-balanced-weights", HelpText = "Weight classes by 1/ln(1.02 + frequency) over the training masks (cached per data set).")]
    public bool UseBalancedWeights { get; set; }
    [Option("lr", HelpText = "Base learning rate (default: 0.007 x batch-size / 4, as the reference).")]
    public double? Lr { get; set; }
    [Option("lr-scheduler", HelpText = "poly | step | cos (default: poly).")]
    public string? LrScheduler { get; set; }
    [Option("lr-step", HelpText = "Epochs between 10x decays for --lr-scheduler step.")]
    public int? LrStep { get; set; }
    [Option("warmup-iters", HelpText = "Linear learning-rate warm-up over this many iterations (default: 0).")]
    public int? WarmupIters { get; set; }
    [Option("momentum", HelpText = "SGD momentum (default: 0.9).")]
    public double? Momentum { get; set; }
    [Option("weight-decay", HelpText = "SGD weight decay (default: 5e-4).")]
    public double? WeightDecay { get; set; }
    [Option("nesterov", HelpText = "Use Nesterov momentum.")]
    public bool Nesterov { get; set; }

    // Machine
    [Option("no-cuda", HelpText = "Train on the CPU even when CUDA is available.")]
    public bool NoCuda { get; set; }
    [Option("gpu-ids", HelpText = "GPU ids, comma separated (default: 0). On CUDA, several ids start one process per GPU (as --nproc), and each process of an mpirun job takes the id of its rank on the machine.")]
    public string? GpuIds { get; set; }
    [Option("device", HelpText = "cpu | cuda | cuda:N (default: cuda:<first gpu id> when available, else cpu).")]
    public string? Device { get; set; }
    [Option("threads", HelpText = "CPU threads for libtorch (default: all cores, shared out among the processes on one machine).")]
    public int? Threads { get; set; }
    [Option("precision", HelpText = "float32 | bf16 (default: float32). bf16 is mixed precision: float32 master weights (updated and saved), " +
        "bfloat16 convolutions, BatchNorm statistics and the loss in float32.")]
    public string? Precision { get; set; }
    [Option("channels-last", HelpText = "Store convolution weights and inputs NHWC (default: on with --precision bf16 on the CPU, off with float32; " +
        "--channels-last false turns it off).")]
    public bool ChannelsLast { get; set; }
    [Option("seed", HelpText = "Random seed (default: 1).")]
    public int? Seed { get; set; }
    [Option("nproc", HelpText = "Data-parallel training on N processes of this machine: runs this command under Open MPI's mpirun " +
        "(--batch-size is per process; the default --lr follows the global batch). For several machines use mpirun or srun yourself (docs/distributed.md).")]
    public int? Nproc { get; set; }

    // Run control
    [Option("resume", HelpText = "Checkpoint to resume from (ours: weights, optimizer, epoch and the run's recorded config, so nothing else is needed; " +
        "flags given with it override the recorded values; a .pth or safetensors: weights only).")]
    public string? Resume { get; set; }
    [Option("init-weights", HelpText = "Start a new run from these weights: our checkpoint, a safetensors state_dict or a PyTorch .pth/.pth.tar (the reference's or the other port's). A different --num-classes re-initialises the classifier; the optimizer and schedule start afresh.")]
    public string? InitWeights { get; set; }
    [Option("checkname", HelpText = "Run name (default: deeplab-<backbone>).")]
    public string? Checkname { get; set; }
    [Option("ft", HelpText = "Fine-tune: with --resume, load the weights only and start at epoch 0.")]
    public bool Ft { get; set; }
    [Option("eval-interval", HelpText = "Evaluate every N epochs (default: 1; the last epoch is always evaluated).")]
    public int? EvalInterval { get; set; }
    [Option("no-val", HelpText = "Skip validation.")]
    public bool NoVal { get; set; }
    [Option("output", HelpText = "Output folder (default: checkpoints/<dataset>-<backbone>-<checkname>/; with --resume, the checkpoint's folder). " +
        "A folder holding another run is refused: continue it with --resume or replace it with --overwrite.")]
    public string? Output { get; set; }
    [Option("overwrite", HelpText = "Start afresh in an --output folder that holds an earlier run: its run files (checkpoints, metrics.jsonl, tb/, train.log, report.html, config.json) are deleted first; other files stay.")]
    public bool Overwrite { get; set; }
    [Option("max-iters", HelpText = "Stop after this many iterations in total (for short runs). The schedule still spans --epochs, and the checkpoint records the batch reached: --resume continues exactly there.")]
    public long? MaxIters { get; set; }
    [Option("time-budget", HelpText = "Stop training after this many seconds (evaluation excluded); poly/cos follow the time spent. --resume continues the data order, but the budget and its schedule start afresh.")]
    public double? TimeBudget { get; set; }
    [Option("keep", HelpText = "Also keep periodic checkpoints: epoch-NNNN.safetensors after each epoch, the newest N kept (default 0: only last and best).")]
    public int? Keep { get; set; }
    [Option("max-val-images", HelpText = "Evaluate on at most this many validation images.")]
    public int? MaxValImages { get; set; }
    [Option("log-interval", HelpText = "Iterations between metrics.jsonl lines (default: 10).")]
    public int? LogInterval { get; set; }

    /// <summary>Defaults → --config file → these flags; with --resume of our checkpoint, its recorded config → these flags.</summary>
    public TrainConfig BuildConfig() => BuildConfig(out _);

    /// <summary>As BuildConfig; overrides lists the recorded settings that flags changed on a resume ("epochs 2 → 3").</summary>
    /// <param name="processes">Data-parallel processes (the default lr follows the global batch).</param>
    public TrainConfig BuildConfig(out IReadOnlyList<string> overrides, int processes = 1)
    {
        overrides = Array.Empty<string>();
        var recorded = RecordedConfig();
        var c = recorded ?? (ConfigFile is null ? new TrainConfig() : ConfigLoader.Load<TrainConfig>(ConfigFile));
        c = Apply(c);
        if (recorded is null) return TrainConfigRules.Resolve(c, processes);
        overrides = Differences(recorded, c);
        return TrainConfigRules.Resolve(c, processes);
    }

    /// <summary>
    /// The config our checkpoint recorded, for a --resume that continues a run (not --ft, which starts
    /// a new one from the weights). The stopping conditions of the run that wrote it (--max-iters,
    /// --time-budget) belong to that invocation and are not carried over; the output folder is the
    /// checkpoint's own, where the run is.
    /// </summary>
    private TrainConfig? RecordedConfig()
    {
        if (Resume is not { } path || Ft || !File.Exists(path)) return null;
        var info = ReadInfo(path);
        if (info?.TrainingConfigJson is not { } json) return null;
        if (ConfigFile is not null)
            throw new UserException($"--config and --resume {path}: the checkpoint records its run's config; give flags to change it");
        var c = JsonSerializer.Deserialize<TrainConfig>(json, ConfigLoader.JsonOptions)
            ?? throw new UserException($"--resume {path}: the recorded config is empty");
        return c with
        {
            Resume = null, InitWeights = null, StartEpoch = 0, MaxIters = null, TimeBudget = null,
            Output = Path.GetDirectoryName(Path.GetFullPath(path)),
        };
    }

    private static CheckpointInfo? ReadInfo(string path)
    {
        try { return CheckpointStore.ReadInfo(path); }
        catch (Exception e) when (e is CheckpointException or IOException or InvalidDataException or JsonException) { return null; }
    }

    /// <summary>"epochs 2 → 3": the recorded settings the flags changed.</summary>
    private static List<string> Differences(TrainConfig before, TrainConfig after)
    {
        var list = new List<string>();
        foreach (var (key, prop) in ConfigLoader.Keys<TrainConfig>())
        {
            if (prop.Name is nameof(TrainConfig.Resume)) continue;
            var a = JsonSerializer.Serialize(prop.GetValue(before), ConfigLoader.JsonOptions);
            var b = JsonSerializer.Serialize(prop.GetValue(after), ConfigLoader.JsonOptions);
            if (a != b) list.Add($"{key.Replace('_', '-')} {a} → {b}");
        }
        return list;
    }

    /// <summary>The flags given, over a base config.</summary>
    private TrainConfig Apply(TrainConfig c)
    {
        return c with
        {
            Backbone = Backbone ?? c.Backbone,
            OutStride = OutStride ?? c.OutStride,
            NumClasses = NumClasses ?? c.NumClasses,
            SyncBn = Switch(SyncBn, c.SyncBn, "sync-bn"),
            FreezeBn = Switch(FreezeBn, c.FreezeBn, "freeze-bn"),
            Dataset = Dataset ?? c.Dataset,
            DataRoot = DataRoot ?? c.DataRoot,
            UseSbd = Switch(UseSbd, c.UseSbd, "use-sbd"),
            Workers = Workers ?? c.Workers,
            BaseSize = BaseSize ?? c.BaseSize,
            CropSize = CropSize ?? c.CropSize,
            ValCrop = Switch(ValCrop, c.ValCrop, "val-crop"),
            SkipBad = Switch(SkipBad, c.SkipBad, "skip-bad"),
            LossType = LossType ?? c.LossType,
            Epochs = Epochs ?? c.Epochs,
            StartEpoch = StartEpoch ?? c.StartEpoch,
            BatchSize = BatchSize ?? c.BatchSize,
            TestBatchSize = TestBatchSize ?? c.TestBatchSize,
            UseBalancedWeights = Switch(UseBalancedWeights, c.UseBalancedWeights, "use-balanced-weights"),
            Lr = Lr ?? c.Lr,
            LrScheduler = LrScheduler ?? c.LrScheduler,
            LrStep = LrStep ?? c.LrStep,
            WarmupIters = WarmupIters ?? c.WarmupIters,
            Momentum = Momentum ?? c.Momentum,
            WeightDecay = WeightDecay ?? c.WeightDecay,
            Nesterov = Switch(Nesterov, c.Nesterov, "nesterov"),
            NoCuda = Switch(NoCuda, c.NoCuda, "no-cuda"),
            GpuIds = GpuIds ?? c.GpuIds,
            Device = Device ?? c.Device,
            Threads = Threads ?? c.Threads,
            Precision = Precision ?? c.Precision,
            ChannelsLast = ChannelsLast ? true : SwitchedOff.Contains("channels-last") ? false : c.ChannelsLast,
            Seed = Seed ?? c.Seed,
            Resume = Resume ?? c.Resume,
            InitWeights = InitWeights ?? c.InitWeights,
            Checkname = Checkname ?? c.Checkname,
            Ft = Switch(Ft, c.Ft, "ft"),
            EvalInterval = EvalInterval ?? c.EvalInterval,
            NoVal = Switch(NoVal, c.NoVal, "no-val"),
            Output = Output ?? c.Output,
            MaxIters = MaxIters ?? c.MaxIters,
            Keep = Keep ?? c.Keep,
            TimeBudget = TimeBudget ?? c.TimeBudget,
            MaxValImages = MaxValImages ?? c.MaxValImages,
            LogInterval = LogInterval ?? c.LogInterval,
            Overwrite = Overwrite,
        };
    }

    /// <summary>
    /// Our checkpoint says what model it holds: a flag naming another is one line with both values,
    /// not a list of mismatched tensors; a run whose every epoch is done has nothing left to train.
    /// Returns false when there is nothing to do.
    /// </summary>
    private bool CheckResume(TrainConfig c, ILogger log)
    {
        if (c.Resume is not { } path || !File.Exists(path) || ReadInfo(path) is not { } info) return true;
        var name = Path.GetFileName(path);
        if (info.Model is { } m)
        {
            if (m.Backbone != c.Backbone)
                throw new UserException($"--backbone {c.Backbone} contradicts {name}, which holds a {m.Backbone} model (leave --backbone out to use it)");
            if (m.OutputStride != c.OutStride)
                throw new UserException($"--out-stride {c.OutStride} contradicts {name}, which was trained at output stride {m.OutputStride} (leave --out-stride out)");
            if (!c.Ft && c.NumClasses is { } n && n != m.NumClasses)
                throw new UserException($"--num-classes {n} contradicts {name}, which predicts {m.NumClasses} classes (use --init-weights or --ft to train another class count)");
        }
        if (!c.Ft && info.Epoch >= c.Epochs && info.EpochIteration == 0)
        {
            log.LogInformation("resume: {Checkpoint} has finished all {Epochs} epochs; nothing to do (give --epochs N above {Epoch} to train further)", path, c.Epochs, info.Epoch);
            return false;
        }
        return true;
    }

    public override int Run()
    {
        if (Nproc is { } n && n < 1) throw new UserException($"--nproc must be >= 1, got {n}");
        if (!Launcher.UnderMpi())
        {
            var processes = Nproc ?? ProcessesForGpus();
            if (processes > 1) return MpiLaunch.Run(processes, Arguments, Loggers.CreateLogger(LogCategories.Training));
        }
        using var group = Launcher.Join();
        if (Nproc is { } np && np != group.Size)
            throw new UserException($"--nproc {np}, but the launcher started {group.Size} processes: leave --nproc out under mpirun or srun");
        try
        {
            return Train(group);
        }
        catch (Exception e) when (group.IsDistributed && Environment.GetEnvironmentVariable("DEEPLAB_DEBUG") != "1")
        {
            // One rank's failure ends the job: the others would wait for it in a collective for ever.
            Console.Error.WriteLine($"deeplab: rank {group.Rank} of {group.Size} failed: {Program.FileSystemMessage(e) ?? Program.Describe(e)}");
            Console.Error.Flush();
            group.Abort(e is UserException or DataException or IOException or UnauthorizedAccessException ? 2 : 1);
            throw;
        }
    }

    /// <summary>
    /// --gpu-ids with several ids on CUDA (the reference trains on all of them): one process per GPU.
    /// One on the CPU, or with one id.
    /// </summary>
    private int ProcessesForGpus()
    {
        if (GpuIds is not { } ids || NoCuda || Device is { } d && !d.StartsWith("cuda", StringComparison.Ordinal)) return 1;
        var count = ids.Split(',', StringSplitOptions.RemoveEmptyEntries).Length;
        return count > 1 && TorchSharp.torch.cuda.is_available() ? count : 1;
    }

    private int Train(Distributed.ProcessGroup group)
    {
        var loggers = Loggers;
        using var quietLoggers = group.IsRoot ? null : OtherRankLoggers(group.Rank);
        if (quietLoggers is not null)
        {
            // Rank 0 speaks for the run; the others report warnings and errors only, tagged with their rank.
            loggers = quietLoggers;
        }
        var config = BuildConfig(out var overrides, group.Size);
        var log = loggers.CreateLogger(LogCategories.Training);
        if (Resume is { } resumed && overrides.Count > 0)
            log.LogInformation("resume: flags override the config recorded in {Checkpoint}: {Overrides}", Path.GetFileName(resumed), string.Join(", ", overrides));
        if (!CheckResume(config, log)) return 0;
        using var stop = new StopSignals(log);
        // Bars on a terminal only: redirected, the trainer's line per epoch and per evaluation is the record.
        var progress = group.IsRoot ? ConsoleProgress.ForStderr(Quiet, linesWhenRedirected: false).OrNull : null;
        var summary = new Trainer(config, loggers, progress, group: group).Run(stop.Token);
        return summary.Interrupted ? stop.ExitCode : 0;
    }

    private static ILoggerFactory OtherRankLoggers(int rank) =>
        LoggerFactory.Create(b => b.SetMinimumLevel(Microsoft.Extensions.Logging.LogLevel.Warning).AddProvider(new Logging.ConsoleSink(tag: $"rank {rank}: ")));
}

/// <summary>
/// SIGINT, SIGTERM, SIGHUP and SIGUSR1 all stop training after the current iteration (or evaluation batch) and
/// save: SIGTERM is what timeout, docker stop and Slurm's time limit send, SIGHUP what a closed terminal
/// sends, and both used to end the process with no checkpoint. A second signal quits at once. The exit
/// code is the shell's 128 + the signal's number for the first one.
/// </summary>
internal sealed class StopSignals : IDisposable
{
    private readonly CancellationTokenSource _cts = new();
    private readonly List<System.Runtime.InteropServices.PosixSignalRegistration> _registrations = new();
    private readonly ILogger _log;
    private int _signal;

    public StopSignals(ILogger log)
    {
        _log = log;
        Register(System.Runtime.InteropServices.PosixSignal.SIGINT, 2, "SIGINT");
        // Windows has neither; PosixSignalRegistration maps SIGTERM/SIGHUP to console events there.
        Register(System.Runtime.InteropServices.PosixSignal.SIGTERM, 15, "SIGTERM");
        Register(System.Runtime.InteropServices.PosixSignal.SIGHUP, 1, "SIGHUP");
        // SIGUSR1 (10 on Linux): Open MPI's mpirun passes it on to every process, where it would end a
        // job on SIGTERM, and Slurm sends it ahead of a time limit with --signal=USR1@SECONDS.
        if (OperatingSystem.IsLinux()) Register((System.Runtime.InteropServices.PosixSignal)10, 10, "SIGUSR1");
    }

    public CancellationToken Token => _cts.Token;

    /// <summary>128 + the first signal's number (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP); 130 when none was caught.</summary>
    public int ExitCode => 128 + (_signal == 0 ? 2 : _signal);

    private void Register(System.Runtime.InteropServices.PosixSignal signal, int number, string name)
    {
        _registrations.Add(System.Runtime.InteropServices.PosixSignalRegistration.Create(signal, ctx =>
        {
            if (Interlocked.CompareExchange(ref _signal, number, 0) != 0)
            {
                // The second signal: out at once, no checkpoint. Environment.Exit would run the shutdown
                // handlers first while training carries on, so on Unix the process ends through _exit.
                if (OperatingSystem.IsWindows()) Environment.Exit(128 + number);
                ExitNow(128 + number);
                return;
            }
            ctx.Cancel = true;
            _log.LogWarning("{Signal}: stopping after this iteration and saving a checkpoint (signal again to quit at once)", name);
            _cts.Cancel();
        }));
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "_exit")]
    private static extern void ExitNow(int status);

    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose();
        _cts.Dispose();
    }
}
