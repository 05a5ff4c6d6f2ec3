using System.Diagnostics;
using System.Globalization;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Config;
using DeepLabTorch.Data;
using DeepLabTorch.Distributed;
using DeepLabTorch.Evaluation;
using DeepLabTorch.Models;
using DeepLabTorch.Reporting;
using DeepLabTorch.Extensions;
using DeepLabTorch.Runtime;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Training;

/// <summary>What a training run achieved and where it left its files.</summary>
public sealed record TrainSummary(
    double BestMIoU,
    int BestEpoch,
    int EpochsCompleted,
    long Iterations,
    double WallSeconds,
    double ImagesPerSecond,
    double FirstEpochLoss,
    double LastEpochLoss,
    string OutputDir,
    string LastCheckpoint,
    string? BestCheckpoint,
    bool Interrupted,
    double DataWaitSeconds = 0);

/// <summary>A NaN or infinite loss: training stops before the update that would spoil the weights.</summary>
public sealed class NonFiniteLossException : Exception
{
    /// <summary>The loss <paramref name="loss"/> at <paramref name="iteration"/> (<paramref name="epoch"/>, <paramref name="batch"/>).</summary>
    public NonFiniteLossException(double loss, long iteration, int epoch, int batch)
        : base($"the loss became {loss.ToString(CultureInfo.InvariantCulture)} at iteration {iteration} (epoch {epoch}, batch {batch}); " +
               "training stopped before that update. Lower --lr, check the data, or resume from the last checkpoint")
    {
        Loss = loss;
        Iteration = iteration;
    }

    /// <summary>The loss value (NaN or ±infinity).</summary>
    public double Loss { get; }
    /// <summary>The iteration whose loss it was (0-based, over the whole run).</summary>
    public long Iteration { get; }
}

/// <summary>
/// The reference recipe: DeepLabV3+ from ModelFactory, SGD with a backbone group at lr and a head
/// group (ASPP + decoder) at 10x, per-iteration LR schedule, CE/focal/dice loss, evaluation on the
/// val split at full image size every eval-interval epochs, last and best checkpoints, metrics.jsonl,
/// TensorBoard events, report.html and a summary. Cancelling the token stops after the current
/// iteration and saves. Set-up is TrainingSession's, the files are RunOutputs'; this class runs the
/// epochs and the evaluations.
/// </summary>
public sealed class Trainer
{
    private readonly TrainConfig _c;
    private readonly ILoggerFactory _loggers;
    private readonly IProgress<ProgressReport>? _progress;
    private readonly ProcessGroup _group;
    private ILogger _log;

    /// <summary>A trainer for one run in this process. <see cref="Run"/> trains, evaluates and writes the run folder.</summary>
    /// <param name="config">
    /// The settings (<see cref="TrainConfig"/>'s defaults, a JSON file, flags); what is left unset (epochs, learning rate,
    /// output folder) is filled in as <c>deeplab train</c> fills it.
    /// </param>
    /// <param name="loggers">Where messages go (category DeepLabTorch.Training); none: nowhere. The run adds train.log in its folder.</param>
    /// <param name="progress">Told how each epoch and evaluation gets on; the trainer draws nothing itself.</param>
    public Trainer(TrainConfig config, ILoggerFactory? loggers = null, IProgress<ProgressReport>? progress = null)
        : this(config, loggers ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance, progress, null)
    {
    }

    /// <param name="config">A config already passed through TrainConfigRules.Resolve.</param>
    /// <param name="loggers">Where messages go (category DeepLabTorch.Training); the run adds train.log in its folder.</param>
    /// <param name="progress">
    /// Told how each epoch and evaluation gets on (iteration, running loss, lr, images/s); the trainer draws
    /// nothing itself. Each epoch and evaluation also logs a summary line.
    /// </param>
    /// <param name="group">
    /// The processes training together (Distributed.Launcher.Join); default: this one alone. Rank 0
    /// writes the run's files; the others should be given loggers that show warnings only, and no progress.
    /// </param>
    internal Trainer(TrainConfig config, ILoggerFactory loggers, IProgress<ProgressReport>? progress, ProcessGroup? group)
    {
        _group = group ?? ProcessGroup.Single;
        _c = config.Epochs is null || config.Lr is null || config.Output is null ? TrainConfigRules.Resolve(config, _group.Size) : config;
        _loggers = loggers;
        _log = loggers.CreateLogger(LogCategories.Training);
        _progress = progress;
    }

    /// <summary>The settings as resolved: every default filled in, as written to the run folder's config.json.</summary>
    public TrainConfig Config => _c;

    /// <summary>What one pass over the training batches did.</summary>
    private readonly record struct EpochOutcome(int Done, bool StoppedEarly, bool HitLimit, double MeanLoss, long Images, double Seconds,
        double DataWaitSeconds = 0, int Steps = 0);

    /// <summary>Trains for the configured epochs (or iterations, or time), evaluating and checkpointing as configured.</summary>
    /// <param name="ct">Cancelling stops after the current iteration and saves last.safetensors; <see cref="TrainSummary.Interrupted"/> is then true.</param>
    /// <exception cref="NonFiniteLossException">The loss became NaN or infinite.</exception>
    /// <exception cref="UserException">A setting, the data or a weight file is wrong; the message names it.</exception>
    public TrainSummary Run(CancellationToken ct = default)
    {
        var wall = Stopwatch.StartNew();
        using var s = TrainingSession.Open(_c, _loggers, ct, _group, _progress);
        // The run folder exists now: from here every message also goes to its train.log (rank 0's).
        using var runLoggers = _group.IsRoot ? new RunLoggerFactory(_loggers, Path.Combine(s.OutputDir, "train.log")) : null;
        _log = (runLoggers ?? _loggers).CreateLogger(LogCategories.Training);
        // Debug: train.log keeps it, the console (Information by default) does not repeat config.json.
        _log.LogDebug("resolved config: {Config}", ConfigLoader.ToJson(_c));
        var p = new RunProgress
        {
            Completed = s.Start.Epoch, PartialBatches = s.Start.Batch, Step = s.Start.Step, Best = s.Start.Best, BestEpoch = s.Start.BestEpoch,
        };
        using var o = new RunOutputs(s, p);
        s.Model.train();
        if (_c.MaxIters == 0)
        {
            // --max-iters 0: the starting weights (ImageNet backbone, --init-weights) saved as they are, to inspect.
            o.SaveLast();
            _log.LogInformation("--max-iters 0: the starting weights are in {Checkpoint}; no step taken", o.LastPath);
            o.WriteReport();
            return Finish(s, o, p, wall.Elapsed.TotalSeconds);
        }
        try
        {
            for (var epoch = s.Start.Epoch; epoch < s.Epochs && !p.Interrupted; epoch++)
            {
                var e = TrainEpoch(s, o, p, epoch, epoch == s.Start.Epoch ? s.Start.Batch : 0, ct);
                if (AfterEpoch(s, o, p, epoch, e, ct)) break;
            }
        }
        catch (Exception e)
        {
            // The caller reports the error on the console; train.log keeps why the run stopped.
            runLoggers?.CreateFileLogger(LogCategories.Training).LogError(e, "training stopped: {Error}", e.Message);
            throw;
        }
        if (o.LastMetrics is not null) _log.LogInformation("{Table}", o.LastMetrics.FormatTable());
        o.WriteReport();
        return Finish(s, o, p, wall.Elapsed.TotalSeconds);
    }

    /// <summary>One epoch of training steps, from batch firstBatch; stops early for --max-iters, --time-budget or cancellation.</summary>
    private EpochOutcome TrainEpoch(TrainingSession s, RunOutputs o, RunProgress p, int epoch, int firstBatch, CancellationToken ct)
    {
        var c = _c;
        var label = $"epoch {epoch + 1}/{s.Epochs}";
        double lastLr = 0, lastIps = 0;
        double lossSum = 0;
        var lossCount = 0;
        var clock = Stopwatch.StartNew();
        long images = 0;
        var done = firstBatch; // batches of this epoch behind us (trained, or dropped by --skip-bad)
        bool stoppedEarly = false, hitLimit = false, stop = false;
        var maxIters = c.MaxIters ?? long.MaxValue;
        var parallel = s.Parallel;
        // On several processes a stop (signal, time budget) must happen at the same step everywhere, so
        // it is decided from the values the ranks agree on after each step, never inside the loader.
        var loaderToken = parallel.IsDistributed ? CancellationToken.None : ct;
        // How long the loop waits for the next batch: the loader's workers prefetch while a step runs, so
        // after the first batch this should be close to nothing.
        var waitClock = Stopwatch.StartNew();
        double waited = 0;
        s.Model.train();
        try
        {
            foreach (var batch in s.TrainLoader.Epoch(epoch, loaderToken, firstBatch))
            {
                var wait = waitClock.Elapsed.TotalSeconds;
                waited += wait;
                var i = batch.Index;
                var spent = parallel.IsDistributed ? p.AgreedSeconds : p.TrainSeconds + clock.Elapsed.TotalSeconds;
                if (c.TimeBudget is { } budget && spent >= budget)
                {
                    batch.Dispose();
                    done = i;
                    hitLimit = stoppedEarly = true;
                    break;
                }
                using (batch)
                {
                    var lr = c.TimeBudget is { } b
                        ? s.Scheduler.Set(s.Optimizer, s.Scheduler.LearningRateAtProgress(spent / b, epoch, p.Step))
                        : s.Scheduler.Apply(s.Optimizer, epoch, i);
                    parallel.BeforeStep(p.Step);
                    var local = Step(s, batch, p, epoch, i);
                    var agreed = parallel.Agree(local, batch.Size, ct.IsCancellationRequested, p.TrainSeconds + clock.Elapsed.TotalSeconds);
                    p.AgreedSeconds = agreed.Seconds;
                    stop = agreed.Stop || (!parallel.IsDistributed && ct.IsCancellationRequested);
                    var value = agreed.MeanLoss;
                    lossSum += value;
                    lossCount++;
                    images += agreed.Images;
                    p.ImagesSeen += agreed.Images;
                    var ips = images / Math.Max(1e-9, clock.Elapsed.TotalSeconds);
                    if (p.Step % c.LogInterval == 0 || i == s.ItersPerEpoch - 1 || p.Step >= maxIters || stop)
                        o.Iteration(epoch, i, lr, value, lossSum / lossCount, ips, 1000 * wait);
                    (lastLr, lastIps) = (lr, ips);
                    _progress?.Report(EpochReport(label, i + 1, s.ItersPerEpoch, clock.Elapsed, lossSum / lossCount, lr, ips));
                }
                done = i + 1;
                waitClock.Restart();
                if (p.Step >= maxIters) { hitLimit = stoppedEarly = true; break; }
                if (stop) { p.Interrupted = stoppedEarly = true; break; }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            p.Interrupted = stoppedEarly = true;
        }
        catch (NonFiniteLossException)
        {
            _progress?.Report(EpochReport(label, done, s.ItersPerEpoch, clock.Elapsed, lossCount > 0 ? lossSum / lossCount : double.NaN, lastLr, lastIps) with { Final = true });
            o.Error("non-finite loss");
            throw;
        }
        _progress?.Report(EpochReport(label, done, s.ItersPerEpoch, clock.Elapsed, lossCount > 0 ? lossSum / lossCount : double.NaN, lastLr, lastIps) with { Final = true });
        p.TrainSeconds += clock.Elapsed.TotalSeconds;
        p.DataWaitSeconds += waited;
        return new EpochOutcome(done, stoppedEarly, hitLimit, lossCount > 0 ? lossSum / lossCount : double.NaN, images, clock.Elapsed.TotalSeconds,
            waited, lossCount);
    }

    /// <summary>An epoch's progress: batches done, running mean loss, learning rate and training images per second.</summary>
    private static ProgressReport EpochReport(string label, long done, long total, TimeSpan elapsed, double meanLoss, double lr, double imagesPerSecond)
    {
        var fields = new List<ProgressField>(2);
        if (!double.IsNaN(meanLoss)) fields.Add(new("loss", ProgressReport.Number(meanLoss, "0.0000")));
        if (lr > 0) fields.Add(new("lr", ProgressReport.Number(lr, "0.######")));
        return new ProgressReport(label, done, total, "", elapsed) { Fields = fields, Rate = (imagesPerSecond, "img") };
    }

    /// <summary>Forward, loss, backward and SGD step on one batch, inside a dispose scope; returns the loss.</summary>
    private static float Step(TrainingSession s, Batch batch, RunProgress p, int epoch, int i)
    {
        using var scope = NewDisposeScope();
        var images = batch.Images.to(s.Device);
        var masks = batch.Masks.to(s.Device);
        // Gradients set to none rather than zeroed: backward then writes them instead of adding into zeros
        // (bench model: 3–11% off the 4×321² train step at 1 thread, in 5 of 6 interleaved pairs; docs/performance.md).
        s.Model.zero_grad(set_to_none: true);
        // --precision bf16: a bfloat16 (channels-last) batch through float32 master weights, the loss on float32 logits.
        Tensor loss;
        if (s.Model.HasTrainingOutputs)
        {
            // BiSeNet and STDC-Seg: the criterion on the main and every auxiliary head, summed as the references
            // do, and STDC's detail heads on the Laplacian boundary of the labels (binary cross-entropy + dice).
            var all = s.Model.ForwardAll(s.Precision.Input(images));
            loss = s.Criterion(MixedPrecision.Logits(all.Main), masks);
            foreach (var aux in all.Auxiliary) loss = loss.Plus(s.Criterion(MixedPrecision.Logits(aux), masks));
            foreach (var detail in all.Detail)
            {
                var (bce, dice) = Models.FaceParsing.StdcDetailTargets.DetailLoss(MixedPrecision.Logits(detail), masks);
                loss = loss.Plus(bce).Plus(dice);
            }
        }
        else
        {
            var output = s.Model.call(s.Precision.Input(images));
            loss = s.Criterion(MixedPrecision.Logits(output), masks);
        }
        var value = loss.item<float>();
        if (!float.IsFinite(value)) throw new NonFiniteLossException(value, p.Step + 1, epoch + 1, i + 1);
        loss.backward();
        s.Parallel.AfterBackward();
        s.Optimizer.step();
        p.Step++;
        return value;
    }

    /// <summary>Records the epoch, evaluates when due, saves checkpoints and the report. Returns true when the run stops here.</summary>
    private bool AfterEpoch(TrainingSession s, RunOutputs o, RunProgress p, int epoch, EpochOutcome e, CancellationToken ct)
    {
        var c = _c;
        if (!double.IsNaN(e.MeanLoss)) p.EpochLosses.Add(e.MeanLoss);
        o.EpochLoss(epoch, e.MeanLoss);
        // A stop mid-epoch records how far the epoch got, so --resume continues at the next batch.
        var finished = !e.StoppedEarly || e.Done >= s.ItersPerEpoch;
        if (finished) (p.Completed, p.PartialBatches) = (epoch + 1, 0);
        else p.PartialBatches = e.Done;
        if (p.Interrupted)
        {
            _log.LogInformation("interrupted in epoch {Epoch} after {Done} of {Batches} batches; saving {Checkpoint}", epoch + 1, e.Done, s.ItersPerEpoch, o.LastPath);
            o.SaveLast();
            return true;
        }
        var imagesPerSecond = e.Images / Math.Max(1e-9, e.Seconds);
        var waitPerStep = 1000 * e.DataWaitSeconds / Math.Max(1, e.Steps);
        if (finished)
            _log.LogInformation("epoch {Epoch}/{Epochs}: mean loss {Loss:0.0000}, {ImagesPerSecond:0.0} img/s, {Seconds:0.0} s; " +
                "waited {DataWaitSeconds:0.00} s for data ({DataWaitMsPerStep:0.0} ms/step)",
                epoch + 1, s.Epochs, e.MeanLoss, imagesPerSecond, e.Seconds, e.DataWaitSeconds, waitPerStep);
        else
            _log.LogInformation("epoch {Epoch}/{Epochs} (stopped after {Done} of {Batches} batches): mean loss {Loss:0.0000}, {ImagesPerSecond:0.0} img/s, {Seconds:0.0} s; " +
                "waited {DataWaitSeconds:0.00} s for data ({DataWaitMsPerStep:0.0} ms/step)",
                epoch + 1, s.Epochs, e.Done, s.ItersPerEpoch, e.MeanLoss, imagesPerSecond, e.Seconds, e.DataWaitSeconds, waitPerStep);

        var last = p.Completed == s.Epochs || e.HitLimit;
        if (s.ValSet is not null && (epoch % c.EvalInterval == c.EvalInterval - 1 || last) && !Evaluate(s, o, p, epoch, ct))
            return true;
        // On several processes a signal during evaluation is acted on here, by every rank together.
        if (s.Parallel.IsDistributed && s.Parallel.AnyStops(ct.IsCancellationRequested))
        {
            _log.LogInformation("interrupted after epoch {Epoch}; saving {Checkpoint}", epoch + 1, o.LastPath);
            o.SaveLast();
            p.Interrupted = true;
            return true;
        }
        o.SaveLast();
        if (c.Keep > 0 && finished)
            foreach (var gone in o.SavePeriodic(c.Keep)) _log.LogInformation("--keep {Keep}: removed {Checkpoint}", c.Keep, gone);
        o.WriteReport();
        if (e.HitLimit)
        {
            if (p.Step >= (c.MaxIters ?? long.MaxValue)) _log.LogInformation("reached --max-iters {MaxIters}; stopping", c.MaxIters);
            else _log.LogInformation("time budget of {TimeBudget} s spent; stopping", c.TimeBudget);
            return true;
        }
        return false;
    }

    /// <summary>Evaluates on the val split and keeps the best checkpoint. Returns false when cancelled (the last checkpoint is saved).</summary>
    private bool Evaluate(TrainingSession s, RunOutputs o, RunProgress p, int epoch, CancellationToken ct)
    {
        // This process's block of the split (all of it on one process); the counts are summed over the processes.
        var total = s.ValBlock!.Count;
        const string label = "  val";
        EvalResult r;
        try
        {
            var options = new EvalOptions
            {
                KeepSamples = s.Parallel.Group.IsRoot ? _c.VisImages : 0,
                AlignCorners = s.Model.Config.AlignCorners,
                Progress = _progress,
                ProgressLabel = label,
                SumCounts = s.Parallel.IsDistributed ? s.Parallel.SumCounts : null,
            };
            // On several processes evaluation runs to its end (a signal is acted on after it, by all ranks together).
            var evalToken = s.Parallel.IsDistributed ? CancellationToken.None : ct;
            r = s.ValLoader is null
                ? SegmentationEvaluator.Nothing(s.NumClasses, s.ClassNames, options)
                : SegmentationEvaluator.Run(s.Model, s.ValLoader, total, s.NumClasses, s.ClassNames, s.Device, options, evalToken);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            _log.LogInformation("interrupted during evaluation; saving {Checkpoint}", o.LastPath);
            o.SaveLast();
            p.Interrupted = true;
            return false;
        }
        o.Evaluation(epoch, r);
        var m = r.Metrics;
        _log.LogInformation("validation ({Images} images, {Seconds:0.0} s): mIoU {MIoU:0.00}%, pixel acc {PixelAccuracy:0.00}%, mean class acc {MeanClassAccuracy:0.00}%, FWIoU {FWIoU:0.00}%",
            r.Images, r.Seconds, 100 * m.MeanIoU, 100 * m.PixelAccuracy, 100 * m.MeanClassAccuracy, 100 * m.FrequencyWeightedIoU);
        if (double.IsNaN(p.Best) || m.MeanIoU > p.Best)
        {
            p.Best = m.MeanIoU;
            p.BestEpoch = epoch;
            o.SaveBest();
            _log.LogInformation("new best mIoU {MIoU:0.00}%: saved {Checkpoint}", 100 * p.Best, o.BestPath);
        }
        return true;
    }

    /// <summary>The summary: returned, recorded in metrics.jsonl and printed.</summary>
    private TrainSummary Finish(TrainingSession s, RunOutputs o, RunProgress p, double wallSeconds)
    {
        var ipsAll = p.ImagesSeen / Math.Max(1e-9, p.TrainSeconds);
        var result = new TrainSummary(p.Best, p.BestEpoch, p.Completed, p.Step, wallSeconds, ipsAll,
            p.EpochLosses.Count > 0 ? p.EpochLosses[0] : double.NaN, p.EpochLosses.Count > 0 ? p.EpochLosses[^1] : double.NaN,
            s.OutputDir, o.LastPath, p.BestEpoch >= 0 && File.Exists(o.BestPath) ? o.BestPath : null, p.Interrupted, p.DataWaitSeconds);
        o.Summary(result);
        // One line per message, as before: a sink that prints lines shows the block; a structured one gets each value once.
        _log.LogInformation("");
        _log.LogInformation(p.Interrupted ? "run interrupted — summary so far:" : "run finished — summary:");
        if (double.IsNaN(p.Best)) _log.LogInformation("  best mIoU      n/a (no validation)");
        else _log.LogInformation("  best mIoU      {BestMIoU:0.00}% at epoch {BestEpoch}", 100 * p.Best, p.BestEpoch + 1);
        _log.LogInformation("  epochs         {Completed}/{Epochs} ({Iterations} iterations)", p.Completed, s.Epochs, p.Step);
        _log.LogInformation("  wall time      {WallTime} ({ImagesPerSecond:0.0} training images/s; {DataWaitSeconds:0.0} s of {TrainSeconds:0.0} s waiting for data)",
            ProgressReport.Duration(result.WallSeconds), ipsAll, p.DataWaitSeconds, p.TrainSeconds);
        if (result.BestCheckpoint is { } best) _log.LogInformation("  checkpoint     {Checkpoint} (last: {LastCheckpoint})", best, o.LastPath);
        else _log.LogInformation("  checkpoint     {Checkpoint}", o.LastPath);
        _log.LogInformation("  report         {Report}", o.ReportPath);
        return result;
    }
}
