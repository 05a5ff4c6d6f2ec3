using System.Diagnostics;
using System.Globalization;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Config;
using DeepLabTorch.Data;
using DeepLabTorch.Evaluation;
using DeepLabTorch.Models;
using DeepLabTorch.Reporting;
using DeepLabTorch.Extensions;
using DeepLabTorch.Runtime;
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
    bool Interrupted);

/// <summary>A NaN or infinite loss: training stops before the update that would spoil the weights.</summary>
public sealed class NonFiniteLossException : Exception
{
    public NonFiniteLossException(double loss, long iteration, int epoch, int batch)
        : base($"the loss became {loss.ToString(CultureInfo.InvariantCulture)} at iteration {iteration} (epoch {epoch}, batch {batch}); " +
               "training stopped before that update. Lower --lr, check the data, or resume from the last checkpoint")
    {
        Loss = loss;
        Iteration = iteration;
    }

    public double Loss { get; }
    public long Iteration { get; }
}

/// <summary>
/// The reference recipe: DeepLabV3+ from ModelFactory, SGD with a backbone group at lr and a head
/// group (ASPP + decoder) at 10x, per-iteration LR schedule, CE/focal/dice loss, evaluation on the
/// val split at full image size every eval-interval epochs, last and best checkpoints, metrics.jsonl,
/// TensorBoard events, report.html and a summary. Cancelling the token stops after the current
/// iteration and saves.
/// </summary>
public sealed class Trainer
{
    private readonly TrainConfig _c;
    private readonly TextWriter _out;
    private readonly bool _tty;

    /// <param name="config">A config already passed through TrainConfigRules.Resolve.</param>
    public Trainer(TrainConfig config, TextWriter output, bool? terminal = null)
    {
        _c = config.Epochs is null || config.Lr is null || config.Output is null ? TrainConfigRules.Resolve(config) : config;
        _out = output;
        _tty = terminal ?? (ReferenceEquals(output, Console.Out) && ProgressBar.StdoutIsTerminal);
    }

    public TrainConfig Config => _c;

    private void Log(string s) => _out.WriteLine(s);

    public static Device ResolveDevice(TrainConfig c) => Engine.ResolveDevice(c.Device, c.NoCuda, c.GpuIds);

    public TrainSummary Run(CancellationToken ct = default)
    {
        var c = _c;
        var wall = Stopwatch.StartNew();
        var device = ResolveDevice(c);
        Engine.SetThreads(c.Threads);
        manual_seed(c.Seed);
        var outDir = c.Output!;
        Log($"train: {c.Backbone} OS{c.OutStride} on {c.Dataset} ({device}, {get_num_threads()} threads); output {outDir}");
        if (c.SyncBn) Log("note: --sync-bn has no effect: this trainer runs one process on one device");

        // Data
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
        using var trainLoader = new DataLoader(trainSet, dataOptions, train: true, c.BatchSize);
        using var valLoader = valSet is null ? null : new DataLoader(valSet, dataOptions, train: false, c.TestBatchSize ?? 1);
        var itersPerEpoch = trainLoader.BatchesPerEpoch;
        Log($"data: {trainSet.Name} {trainSet.Count} training images ({itersPerEpoch} batches of {c.BatchSize}), " +
            (valSet is null ? "no validation" : $"{valSet.Count} validation images") + $", {numClasses} classes");

        if (c.InitWeights is { } iw && !File.Exists(iw)) throw new UserException($"--init-weights: no file at '{iw}'");
        if (c.Resume is { } rs && !File.Exists(rs)) throw new UserException($"--resume: no checkpoint found at '{rs}'");

        // Model, optimizer, loss
        using var model = ModelFactory.Create(new ModelConfig(c.Backbone, c.OutStride, numClasses));
        model.FreezeBatchNorm = c.FreezeBn;
        if (c.InitWeights is { } init) InitFrom(init, model, c, numClasses);
        var start = c.StartEpoch;
        var startBatch = 0;
        var best = double.NaN;
        var bestEpoch = -1;
        long step = 0;
        // The optimizer holds Parameter objects, and Module.to replaces them: move first, then build it.
        model.to(device);
        using var optimizer = SgdFactory.Create(model, c.Lr!.Value, c.Momentum, c.WeightDecay, c.Nesterov, c.HeadLrMultiplier);
        if (c.Resume is { } resume)
        {
            (start, startBatch, best, bestEpoch, step) = Resume(resume, model, optimizer, c, start);
            if (startBatch >= trainLoader.BatchesPerEpoch) (start, startBatch) = (start + 1, 0);
            if (startBatch > 0) Log($"resume: continuing epoch {start + 1} at batch {startBatch + 1} of {trainLoader.BatchesPerEpoch}");
        }

        // Only now that the data, the model and any weights to start from have loaded does the run get a
        // folder: a typo in --data-root or a bad --init-weights/--resume file leaves nothing behind.
        Directory.CreateDirectory(outDir);
        ConfigLoader.Save(c, Path.Combine(outDir, "config.json"));

        Tensor? weight = null;
        if (c.UseBalancedWeights)
        {
            var cacheDir = c.DataRoot ?? (c.Dataset == "synthetic" ? Datasets.DefaultSyntheticRoot : outDir);
            var cache = Path.Combine(cacheDir, $"{c.Dataset}_{c.TrainSplit}{(c.UseSbd ? "+sbd" : "")}_classes_weights.json");
            var w = ClassWeights.LoadOrCompute(trainSet, numClasses, cache, Log, ct);
            weight = tensor(w.Select(x => (float)x).ToArray()).to(device).DetachFromDisposeScope();
            Log("class weights: " + string.Join(" ", w.Select(x => x.ToString("0.00", CultureInfo.InvariantCulture))));
        }
        var criterion = Losses.Build(c.LossType, weight, 255, c.BatchAverage);
        var epochs = c.Epochs!.Value;
        var scheduler = new LrScheduler(c.LrScheduler, c.Lr!.Value, epochs, itersPerEpoch, c.LrStep, c.WarmupIters, 0.9, c.HeadLrMultiplier);

        // Reporting
        using var metrics = new MetricsLog(Path.Combine(outDir, "metrics.jsonl"), append: c.Resume is not null);
        using var tb = new TensorBoardWriter(Path.Combine(outDir, "tb"));
        var lossCurve = new List<(long, double)>();
        var miouCurve = new List<(int, double)>();
        SegmentationMetrics? lastMetrics = null;
        IReadOnlyList<EvalSample> lastSamples = Array.Empty<EvalSample>();
        var lastPath = Path.Combine(outDir, "last.safetensors");
        var bestPath = Path.Combine(outDir, "best.safetensors");
        var epochLosses = new List<double>();
        long imagesSeen = 0;
        double trainSeconds = 0;
        var interrupted = false;
        var completed = start;
        var partialBatches = startBatch; // batches trained in epoch `completed` + 1 when it is unfinished

        CheckpointInfo Info(int epochsDone) => new()
        {
            Model = new CheckpointModel(c.Backbone, c.OutStride, numClasses, classNames),
            TrainingConfigJson = ConfigLoader.ToJson(c),
            Epoch = epochsDone,
            EpochIteration = partialBatches,
            Iteration = step,
            BestMIoU = best,
            Scheduler = new Dictionary<string, double>
            {
                ["base_lr"] = scheduler.BaseLr, ["epochs"] = epochs, ["iters_per_epoch"] = itersPerEpoch, ["step"] = step,
            },
            Rng = new CheckpointRng { DataSeed = c.Seed, AugmentationSeed = c.Seed },
        };

        void WriteReport()
        {
            var summary = new List<(string, string)>
            {
                ("model", $"DeepLabV3+ {c.Backbone}, output stride {c.OutStride}, {numClasses} classes"),
                ("data", $"{c.Dataset} {c.TrainSplit} ({trainSet.Count} images) / {c.ValSplit}"),
                ("recipe", Inv($"{c.LossType} loss, SGD lr {c.Lr} ({c.LrScheduler}), momentum {c.Momentum}, weight decay {c.WeightDecay}, batch {c.BatchSize}, crop {c.CropSize}")),
                ("progress", $"{completed}/{epochs} epochs, {step} iterations"),
                ("best mIoU", double.IsNaN(best) ? "n/a" : Inv($"{100 * best:0.00}% (epoch {bestEpoch + 1})")),
            };
            HtmlReport.Write(Path.Combine(outDir, "report.html"), new ReportData(
                $"DeepLabV3+ training — {Path.GetFileName(Path.GetFullPath(outDir))}", summary, lossCurve, miouCurve, lastMetrics,
                lastSamples.Select(s => Visuals.ToReportImage(s)).ToList()));
        }

        model.train();
        var maxIters = c.MaxIters ?? long.MaxValue;
        for (var epoch = start; epoch < epochs && !interrupted; epoch++)
        {
            var bar = new ProgressBar(_out, _tty, $"epoch {epoch + 1}/{epochs}", itersPerEpoch);
            double lossSum = 0;
            var lossCount = 0;
            var epochClock = Stopwatch.StartNew();
            long epochImages = 0;
            var firstBatch = epoch == start ? startBatch : 0;
            var done = firstBatch; // batches of this epoch behind us (trained, or dropped by --skip-bad)
            var stoppedEarly = false;
            var hitMax = false;
            model.train();
            try
            {
                foreach (var batch in trainLoader.Epoch(epoch, ct, firstBatch))
                {
                    var i = batch.Index;
                    var spent = trainSeconds + epochClock.Elapsed.TotalSeconds;
                    if (c.TimeBudget is { } budget && spent >= budget)
                    {
                        batch.Dispose();
                        done = i;
                        hitMax = stoppedEarly = true;
                        break;
                    }
                    using (batch)
                    using (var scope = NewDisposeScope())
                    {
                        var lr = c.TimeBudget is { } b
                            ? scheduler.Set(optimizer, scheduler.LearningRateAtProgress(spent / b, epoch, step))
                            : scheduler.Apply(optimizer, epoch, i);
                        var images = batch.Images.to(device);
                        var masks = batch.Masks.to(device);
                        optimizer.zero_grad();
                        var output = model.call(images);
                        var loss = criterion(output, masks);
                        var value = loss.item<float>();
                        if (!float.IsFinite(value)) throw new NonFiniteLossException(value, step + 1, epoch + 1, i + 1);
                        loss.backward();
                        optimizer.step();
                        step++;
                        lossSum += value;
                        lossCount++;
                        epochImages += batch.Size;
                        imagesSeen += batch.Size;
                        var ips = epochImages / Math.Max(1e-9, epochClock.Elapsed.TotalSeconds);
                        if (step % c.LogInterval == 0 || i == itersPerEpoch - 1 || step >= maxIters || ct.IsCancellationRequested)
                        {
                            metrics.Iteration(epoch, i, step, lr, value, ips);
                            tb.AddScalar("train/total_loss_iter", value, step);
                            tb.AddScalar("train/lr", lr, step);
                            lossCurve.Add((step, lossSum / lossCount));
                        }
                        bar.Update(i + 1, lossSum / lossCount, lr, ips);
                    }
                    done = i + 1;
                    if (step >= maxIters) { hitMax = stoppedEarly = true; break; }
                    if (ct.IsCancellationRequested) { interrupted = stoppedEarly = true; break; }
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                interrupted = stoppedEarly = true;
            }
            catch (NonFiniteLossException)
            {
                bar.Finish();
                metrics.Record("error", new Dictionary<string, object?> { ["message"] = "non-finite loss", ["step"] = step + 1 });
                throw;
            }
            bar.Finish();
            trainSeconds += epochClock.Elapsed.TotalSeconds;
            var meanLoss = lossCount > 0 ? lossSum / lossCount : double.NaN;
            if (lossCount > 0) epochLosses.Add(meanLoss);
            tb.AddScalar("train/total_loss_epoch", meanLoss, epoch);
            // A stop mid-epoch records how far the epoch got, so --resume continues at the next batch.
            var epochFinished = !stoppedEarly || done >= itersPerEpoch;
            if (epochFinished) (completed, partialBatches) = (epoch + 1, 0);
            else partialBatches = done;
            if (interrupted)
            {
                Log($"interrupted in epoch {epoch + 1} after {done} of {itersPerEpoch} batches; saving {lastPath}");
                CheckpointStore.Save(lastPath, model, optimizer, Info(completed));
                break;
            }
            Log(Inv($"epoch {epoch + 1}/{epochs}{(epochFinished ? "" : $" (stopped after {done} of {itersPerEpoch} batches)")}: mean loss {meanLoss:0.0000}, {epochImages / Math.Max(1e-9, epochClock.Elapsed.TotalSeconds):0.0} img/s, {epochClock.Elapsed.TotalSeconds:0.0} s"));

            var last = completed == epochs || hitMax;
            if (valLoader is not null && (epoch % c.EvalInterval == c.EvalInterval - 1 || last))
            {
                var total = Math.Min(valSet!.Count, c.MaxValImages ?? int.MaxValue);
                var evalBar = new ProgressBar(_out, _tty, "  val", total);
                EvalResult r;
                try
                {
                    r = SegmentationEvaluator.Run(model, valLoader, valSet.Count, numClasses, classNames, device, new EvalOptions
                    {
                        KeepSamples = c.VisImages,
                        MaxImages = c.MaxValImages,
                        AlignCorners = model.Config.AlignCorners,
                        OnProgress = (d, t) => evalBar.Update(d, double.NaN, 0, d / Math.Max(1e-9, evalBar.Elapsed.TotalSeconds)),
                    }, ct);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    evalBar.Finish();
                    Log($"interrupted during evaluation; saving {lastPath}");
                    CheckpointStore.Save(lastPath, model, optimizer, Info(completed));
                    interrupted = true;
                    break;
                }
                evalBar.Finish();
                var m = r.Metrics;
                lastMetrics = m;
                lastSamples = r.Samples;
                miouCurve.Add((epoch + 1, m.MeanIoU));
                metrics.Evaluation(epoch, step, m, r.Seconds, r.Images);
                tb.AddScalar("val/mIoU", m.MeanIoU, epoch);
                tb.AddScalar("val/Acc", m.PixelAccuracy, epoch);
                tb.AddScalar("val/Acc_class", m.MeanClassAccuracy, epoch);
                tb.AddScalar("val/fwIoU", m.FrequencyWeightedIoU, epoch);
                for (var k = 0; k < r.Samples.Count; k++)
                {
                    var (png, h, w) = Visuals.ToStripPng(r.Samples[k]);
                    tb.AddImage($"val/sample_{k}", png, h, w, epoch);
                }
                Log(Inv($"validation ({r.Images} images, {r.Seconds:0.0} s): mIoU {100 * m.MeanIoU:0.00}%, pixel acc {100 * m.PixelAccuracy:0.00}%, mean class acc {100 * m.MeanClassAccuracy:0.00}%, FWIoU {100 * m.FrequencyWeightedIoU:0.00}%"));
                if (double.IsNaN(best) || m.MeanIoU > best)
                {
                    best = m.MeanIoU;
                    bestEpoch = epoch;
                    CheckpointStore.Save(bestPath, model, optimizer, Info(completed));
                    Log(Inv($"new best mIoU {100 * best:0.00}%: saved {bestPath}"));
                }
            }
            CheckpointStore.Save(lastPath, model, optimizer, Info(completed));
            if (c.Keep > 0 && epochFinished)
            {
                CheckpointStore.Save(CheckpointFiles.Periodic(outDir, completed), model, optimizer, Info(completed));
                foreach (var gone in CheckpointFiles.Prune(outDir, c.Keep)) Log($"--keep {c.Keep}: removed {gone}");
            }
            tb.Flush();
            WriteReport();
            if (hitMax)
            {
                Log(step >= maxIters ? $"reached --max-iters {c.MaxIters}; stopping" : $"time budget of {c.TimeBudget} s spent; stopping");
                break;
            }
        }
        if (lastMetrics is not null) Log(lastMetrics.FormatTable());
        WriteReport();

        var ipsAll = imagesSeen / Math.Max(1e-9, trainSeconds);
        var result = new TrainSummary(best, bestEpoch, completed, step, wall.Elapsed.TotalSeconds, ipsAll,
            epochLosses.Count > 0 ? epochLosses[0] : double.NaN, epochLosses.Count > 0 ? epochLosses[^1] : double.NaN,
            outDir, lastPath, File.Exists(bestPath) ? bestPath : null, interrupted);
        metrics.Record("summary", new Dictionary<string, object?>
        {
            ["best_miou"] = best, ["best_epoch"] = bestEpoch, ["epochs_completed"] = completed, ["iterations"] = step,
            ["wall_seconds"] = result.WallSeconds, ["images_per_sec"] = ipsAll, ["first_epoch_loss"] = result.FirstEpochLoss,
            ["last_epoch_loss"] = result.LastEpochLoss, ["last_checkpoint"] = lastPath, ["best_checkpoint"] = result.BestCheckpoint,
            ["interrupted"] = interrupted,
        });
        Log("");
        Log(interrupted ? "run interrupted — summary so far:" : "run finished — summary:");
        Log(Inv($"  best mIoU      {(double.IsNaN(best) ? "n/a (no validation)" : $"{100 * best:0.00}% at epoch {bestEpoch + 1}")}"));
        Log(Inv($"  epochs         {completed}/{epochs} ({step} iterations)"));
        Log(Inv($"  wall time      {ProgressBar.Duration(result.WallSeconds)} ({ipsAll:0.0} training images/s)"));
        Log($"  checkpoint     {result.BestCheckpoint ?? lastPath}" + (result.BestCheckpoint is not null ? $" (last: {lastPath})" : ""));
        Log($"  report         {Path.Combine(outDir, "report.html")}");
        weight?.Dispose();
        return result;
    }

    /// <summary>--init-weights: any weight file into the new model; only the classifier may differ (it is re-initialised).</summary>
    private void InitFrom(string path, DeepLabV3Plus model, TrainConfig c, int numClasses)
    {
        var sd = WeightFiles.LoadStateDict(path, out var info);
        try
        {
            // Our checkpoints say what they hold: a different backbone or output stride is named, not guessed at.
            WeightFiles.ResolveModel(path, info, c.Backbone, c.OutStride, numClasses);
            var report = WeightLoader.Apply(model, sd, path, numClasses, model.ClassifierPrefix, Log, ModelCatalog.Get(c.Backbone).AliasMap, info);
            Log($"init: {report.Loaded.Count} tensors from {path}" +
                (report.Reinitialised.Count > 0 ? $"; classifier re-initialised for {numClasses} classes" : ""));
        }
        finally
        {
            foreach (var t in sd.Values) t.Dispose();
        }
    }

    /// <summary>Restores a --resume file (Run has checked it exists): our checkpoint (weights, and optimizer unless --ft) or any weight file (weights only).</summary>
    private (int start, int startBatch, double best, int bestEpoch, long step) Resume(string path, DeepLabV3Plus model, optim.Optimizer optimizer, TrainConfig c, int start)
    {
        var info = CheckpointStore.ReadInfo(path);
        if (info is null)
        {
            // A reference .pth or plain safetensors: weights only (the classifier is re-initialised for another class count).
            WeightLoader.LoadInto(model, path, model.Config.NumClasses, model.ClassifierPrefix, Log, ModelCatalog.Get(c.Backbone).AliasMap);
            Log($"resume: loaded weights from {path}; starting at epoch {start + 1}");
            return (start, 0, double.NaN, -1, 0);
        }
        if (c.Ft)
        {
            WeightLoader.LoadInto(model, path, model.Config.NumClasses, model.ClassifierPrefix, Log);
            Log($"fine-tuning from {path} (trained {info.Epoch} epochs); optimizer state not restored, starting at epoch 1");
            return (0, 0, double.NaN, -1, 0);
        }
        var loaded = CheckpointStore.Load(path, model, optimizer);
        Log(Inv($"resume: {path} after epoch {loaded.Epoch} (iteration {loaded.Iteration}, best mIoU {(double.IsNaN(loaded.BestMIoU) ? "n/a" : (100 * loaded.BestMIoU).ToString("0.00", CultureInfo.InvariantCulture) + "%")})"));
        return (loaded.Epoch, loaded.EpochIteration, loaded.BestMIoU, double.IsNaN(loaded.BestMIoU) ? -1 : loaded.Epoch - 1, loaded.Iteration);
    }

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
