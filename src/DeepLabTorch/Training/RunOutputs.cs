using System.Globalization;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Config;
using DeepLabTorch.Evaluation;
using DeepLabTorch.Reporting;
using TorchSharp;

namespace DeepLabTorch.Training;

/// <summary>How far a run has got: what checkpoints record and the summary reports.</summary>
internal sealed class RunProgress
{
    /// <summary>Epochs finished.</summary>
    public int Completed { get; set; }
    /// <summary>Batches trained in epoch Completed + 1 when it is unfinished (a mid-epoch stop).</summary>
    public int PartialBatches { get; set; }
    public long Step { get; set; }
    public double Best { get; set; } = double.NaN;
    public int BestEpoch { get; set; } = -1;
    public long ImagesSeen { get; set; }
    public double TrainSeconds { get; set; }
    /// <summary>On several processes: the mean over the ranks of TrainSeconds at the last step (what --time-budget reads there).</summary>
    public double AgreedSeconds { get; set; }
    /// <summary>Of TrainSeconds, the time the training loop waited for the loader's next batch.</summary>
    public double DataWaitSeconds { get; set; }
    public bool Interrupted { get; set; }
    public List<double> EpochLosses { get; } = new();
}

/// <summary>
/// Everything a run writes into its folder: metrics.jsonl, TensorBoard events, the last, best and
/// periodic checkpoints, and report.html (with the curves it draws). On several processes only rank 0
/// writes; the others keep the same state (LastMetrics) and write nothing.
/// </summary>
internal sealed class RunOutputs : IDisposable
{
    private readonly TrainingSession _s;
    private readonly RunProgress _p;
    private readonly MetricsLog? _metrics;
    private readonly TensorBoardWriter? _tb;
    private readonly List<(long, double)> _lossCurve = new();
    private readonly List<(int, double)> _miouCurve = new();
    private IReadOnlyList<EvalSample> _lastSamples = Array.Empty<EvalSample>();
    private int? _lastMetricsEpoch;

    public RunOutputs(TrainingSession session, RunProgress progress)
    {
        _s = session;
        _p = progress;
        var dir = session.OutputDir;
        LastPath = Path.Combine(dir, "last.safetensors");
        BestPath = Path.Combine(dir, "best.safetensors");
        Writes = session.Parallel.Group.IsRoot;
        if (!Writes) return;
        _metrics = new MetricsLog(Path.Combine(dir, "metrics.jsonl"), append: session.Config.Resume is not null);
        _tb = new TensorBoardWriter(Path.Combine(dir, "tb"));
        if (session.Config.Resume is { } resume && !session.Config.Ft) LoadHistory(resume, session.Start.Step, session.Start.Epoch);
    }

    /// <summary>
    /// A resumed run's report covers the whole run: the loss and mIoU points the run logged up to the
    /// checkpoint, read from the metrics.jsonl beside it (lines past the checkpoint belong to work lost).
    /// </summary>
    private void LoadHistory(string checkpoint, long step, int epochsDone)
    {
        var path = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(checkpoint)) ?? ".", "metrics.jsonl");
        if (!File.Exists(path)) return;
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        for (var line = reader.ReadLine(); line is not null; line = reader.ReadLine())
        {
            try
            {
                using var doc = System.Text.Json.JsonDocument.Parse(line);
                var e = doc.RootElement;
                var type = e.TryGetProperty("type", out var t) ? t.GetString() : null;
                if (type == "train" && e.GetProperty("step").GetInt64() <= step && e.GetProperty("loss").ValueKind == System.Text.Json.JsonValueKind.Number)
                    _lossCurve.Add((e.GetProperty("step").GetInt64(), e.GetProperty("loss").GetDouble()));
                else if (type == "eval" && e.GetProperty("epoch").GetInt32() <= epochsDone && e.GetProperty("miou").ValueKind == System.Text.Json.JsonValueKind.Number)
                    _miouCurve.Add((e.GetProperty("epoch").GetInt32(), e.GetProperty("miou").GetDouble()));
            }
            catch (Exception ex) when (ex is System.Text.Json.JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            {
                // A line cut short by a crash: the history is a courtesy, not worth failing the run for.
            }
        }
    }

    /// <summary>False on the ranks other than 0 of a data-parallel run.</summary>
    public bool Writes { get; }
    public string LastPath { get; }
    public string BestPath { get; }
    public string ReportPath => Path.Combine(_s.OutputDir, "report.html");
    public SegmentationMetrics? LastMetrics { get; private set; }

    public void Iteration(int epoch, int batch, double lr, double loss, double runningMeanLoss, double imagesPerSecond, double? dataWaitMs = null)
    {
        if (!Writes) return;
        // Epochs count from 1 in every output, as on the console.
        _metrics!.Iteration(epoch + 1, batch, _p.Step, lr, loss, imagesPerSecond, dataWaitMs);
        _tb!.AddScalar("train/total_loss_iter", loss, _p.Step);
        _tb.AddScalar("train/lr", lr, _p.Step);
        _lossCurve.Add((_p.Step, loss));
    }

    public void EpochLoss(int epoch, double meanLoss) => _tb?.AddScalar("train/total_loss_epoch", meanLoss, epoch + 1);

    public void Error(string message) =>
        _metrics?.Record("error", new Dictionary<string, object?> { ["message"] = message, ["step"] = _p.Step + 1 });

    public void Evaluation(int epoch, EvalResult r)
    {
        var m = r.Metrics;
        LastMetrics = m;
        _lastSamples = r.Samples;
        _lastMetricsEpoch = epoch + 1;
        _miouCurve.Add((epoch + 1, m.MeanIoU));
        if (!Writes) return;
        _metrics!.Evaluation(epoch + 1, _p.Step, m, r.Seconds, r.Images);
        _tb!.AddScalar("val/mIoU", m.MeanIoU, epoch + 1);
        _tb.AddScalar("val/Acc", m.PixelAccuracy, epoch + 1);
        _tb.AddScalar("val/Acc_class", m.MeanClassAccuracy, epoch + 1);
        _tb.AddScalar("val/fwIoU", m.FrequencyWeightedIoU, epoch + 1);
        for (var k = 0; k < r.Samples.Count; k++)
        {
            var (png, h, w) = Visuals.ToStripPng(r.Samples[k]);
            _tb.AddImage($"val/sample_{k}", png, h, w, epoch + 1);
        }
    }

    public void SaveLast() => Save(LastPath);
    public void SaveBest() => Save(BestPath);

    /// <summary>--keep N: a numbered checkpoint of a finished epoch, and the older ones pruned. Returns the files removed.</summary>
    public IReadOnlyList<string> SavePeriodic(int keep)
    {
        if (!Writes) return Array.Empty<string>();
        Save(CheckpointFiles.Periodic(_s.OutputDir, _p.Completed));
        return CheckpointFiles.Prune(_s.OutputDir, keep).ToList();
    }

    private void Save(string path)
    {
        if (Writes) CheckpointStore.Save(path, _s.Model, _s.Optimizer, Info());
    }

    private CheckpointInfo Info()
    {
        var c = _s.Config;
        return new CheckpointInfo
        {
            Model = new CheckpointModel(c.Backbone, c.OutStride, _s.NumClasses, _s.ClassNames),
            TrainingConfigJson = ConfigLoader.ToJson(c),
            PretrainedBackbone = _s.Pretrained is { } pretrained ? $"{pretrained.File} sha256:{pretrained.Sha256}" : null,
            Epoch = _p.Completed,
            EpochIteration = _p.PartialBatches,
            Iteration = _p.Step,
            BestMIoU = _p.Best,
            Scheduler = new Dictionary<string, double>
            {
                ["base_lr"] = _s.Scheduler.BaseLr, ["epochs"] = _s.Epochs, ["iters_per_epoch"] = _s.ItersPerEpoch, ["step"] = _p.Step,
                // The global batch is processes × batch size: a mid-epoch resume continues at the same global batch only with as many.
                ["processes"] = _s.Parallel.Size,
            },
            Rng = new CheckpointRng { DataSeed = c.Seed, AugmentationSeed = c.Seed },
        };
    }

    /// <summary>Flushes TensorBoard and rewrites report.html from what the run has done so far.</summary>
    public void WriteReport()
    {
        if (!Writes) return;
        _tb!.Flush();
        var c = _s.Config;
        var summary = new List<(string, string)>
        {
            ("model", $"DeepLabV3+ {c.Backbone}, output stride {c.OutStride}, {_s.NumClasses} classes"),
            ("data", $"{c.Dataset} {c.TrainSplit} ({_s.TrainSet.Count} images) / {c.ValSplit}"),
            ("recipe", Inv($"{c.LossType} loss, SGD lr {c.Lr} ({c.LrScheduler}), momentum {c.Momentum}, weight decay {c.WeightDecay}, batch {(_s.Parallel.IsDistributed ? $"{_s.Parallel.Size} processes × {c.BatchSize}" : c.BatchSize)}{(c.SyncBn && _s.Parallel.IsDistributed ? " (synchronised BatchNorm)" : "")}, crop {c.CropSize}")),
            ("progress", $"{_p.Completed}/{_s.Epochs} epochs, {_p.Step} iterations"),
            ("best mIoU", double.IsNaN(_p.Best) ? "n/a" : Inv($"{100 * _p.Best:0.00}% (epoch {_p.BestEpoch + 1})")),
        };
        HtmlReport.Write(ReportPath, new ReportData(
            $"DeepLabV3+ training — {Path.GetFileName(Path.GetFullPath(_s.OutputDir))}", summary, _lossCurve, _miouCurve, LastMetrics,
            _lastSamples.Select(s => Visuals.ToReportImage(s)).ToList(), _lastMetricsEpoch));
    }

    /// <summary>The summary record in metrics.jsonl.</summary>
    public void Summary(TrainSummary r) => _metrics?.Record("summary", new Dictionary<string, object?>
    {
        ["best_miou"] = r.BestMIoU, ["best_epoch"] = r.BestEpoch, ["epochs_completed"] = r.EpochsCompleted, ["iterations"] = r.Iterations,
        ["wall_seconds"] = r.WallSeconds, ["images_per_sec"] = r.ImagesPerSecond, ["first_epoch_loss"] = r.FirstEpochLoss,
        ["last_epoch_loss"] = r.LastEpochLoss, ["last_checkpoint"] = r.LastCheckpoint, ["best_checkpoint"] = r.BestCheckpoint,
        ["interrupted"] = r.Interrupted, ["data_wait_seconds"] = r.DataWaitSeconds,
    });

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    public void Dispose()
    {
        _tb?.Dispose();
        _metrics?.Dispose();
    }
}
