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

/// <summary>
/// train: its flags are the settings declared on <see cref="TrainConfig"/>, made into options at run
/// time (<see cref="FlagsType"/>), so each setting is declared once; only what belongs to the command
/// line alone (--config, --nproc) is declared here.
/// </summary>
public abstract class TrainVerb : VerbBase
{
    public const string HelpText = "Train DeepLabV3+ with the reference recipe (SGD, poly LR, head at 10x). Flags and defaults follow the reference " +
        "train.py; differences: validation runs on full-size images (--val-crop for the reference's centre crop), --use-sbd is off by default, " +
        "and the default backbone is resnet as in the reference (use --backbone mobilenet on a CPU).";

    private static readonly Lazy<Type> Flags = new(() => SettingFlags.Build<TrainVerb, TrainConfig>("train", HelpText));

    /// <summary>The train verb as CommandLineParser sees it: this class plus a flag property per setting of TrainConfig.</summary>
    public static Type FlagsType => Flags.Value;

    [Option("config", HelpText = "JSON config (e.g. configs/voc-mobilenet-os16.json); flags given here override it; unknown keys are errors.")]
    public string? ConfigFile { get; set; }

    [Option("nproc", HelpText = "Data-parallel training on N processes of this machine: runs this command under Open MPI's mpirun " +
        "(--batch-size is per process; the default --lr follows the global batch). For several machines use mpirun or srun yourself (docs/distributed.md).")]
    public int? Nproc { get; set; }

    /// <summary>A setting's flag as given (null or false when not given).</summary>
    private T? Given<T>(string property) => (T?)SettingFlags.Given(this, Settings.Of<TrainConfig>().Single(s => s.Property.Name == property));

    private string? Resume => Given<string>(nameof(TrainConfig.Resume));
    private bool Ft => Given<bool>(nameof(TrainConfig.Ft));
    private string? GpuIds => Given<string>(nameof(TrainConfig.GpuIds));
    private bool NoCuda => Given<bool>(nameof(TrainConfig.NoCuda));
    private string? Device => Given<string>(nameof(TrainConfig.Device));

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

    /// <summary>The flags given, over a base config. --overwrite is never taken from a base: it is a choice of this command.</summary>
    private TrainConfig Apply(TrainConfig c) => SettingFlags.Apply(this, c with { Overwrite = false }, SwitchedOff);

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
            // The flags' values here are the recorded ones unless given: a difference is a flag given.
            FlagContradiction.Backbone(c.Backbone, m.Backbone, name);
            FlagContradiction.OutputStride(c.OutStride, m.OutputStride, name);
            if (!c.Ft) FlagContradiction.NumClasses(c.NumClasses, m.NumClasses, name, "use --init-weights or --ft to train another class count");
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
