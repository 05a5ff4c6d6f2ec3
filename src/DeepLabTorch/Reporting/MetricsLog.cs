using System.Text;
using System.Text.Json;
using DeepLabTorch.Evaluation;

namespace DeepLabTorch.Reporting;

/// <summary>
/// metrics.jsonl: one JSON object per line, flushed as written so a crash loses nothing.
/// "type": "train" lines carry epoch, iter, step, lr, loss, images_per_sec; "type": "eval" lines
/// carry the evaluation metrics with per-class IoU by class name. NaN is written as null.
/// </summary>
internal sealed class MetricsLog : IDisposable
{
    private readonly StreamWriter _writer;
    private readonly object _lock = new();

    public MetricsLog(string path, bool append = true)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir != null) Directory.CreateDirectory(dir);
        FilePath = path;
        _writer = new StreamWriter(new FileStream(path, append ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.Read), new UTF8Encoding(false)) { AutoFlush = true };
    }

    public string FilePath { get; }

    /// <param name="dataWaitMs">How long this step waited for its batch (the loader prefetches, so ~0 once running).</param>
    public void Iteration(int epoch, int iter, long step, double lr, double loss, double imagesPerSec, double? dataWaitMs = null) => Line(w =>
    {
        w.WriteString("type", "train");
        w.WriteNumber("epoch", epoch);
        w.WriteNumber("iter", iter);
        w.WriteNumber("step", step);
        JsonValues.Number(w, "lr", lr);
        JsonValues.Number(w, "loss", loss);
        JsonValues.Number(w, "images_per_sec", imagesPerSec);
        if (dataWaitMs is { } ms) JsonValues.Number(w, "data_wait_ms", Math.Round(ms, 2));
    });

    public void Evaluation(int epoch, long step, SegmentationMetrics m, double seconds, int images) => Line(w =>
    {
        w.WriteString("type", "eval");
        w.WriteNumber("epoch", epoch);
        w.WriteNumber("step", step);
        JsonValues.Metrics(w, m, classAccuracy: false, beforeClasses: x =>
        {
            x.WriteNumber("images", images);
            JsonValues.Number(x, "seconds", seconds);
        });
    });

    /// <summary>A free-form line (e.g. the run summary): every value must be a string, bool or number.</summary>
    public void Record(string type, IReadOnlyDictionary<string, object?> values) => Line(w =>
    {
        w.WriteString("type", type);
        foreach (var (k, v) in values) JsonValues.Write(w, k, v);
    });

    private void Line(Action<Utf8JsonWriter> body)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("time", DateTimeOffset.UtcNow.ToString("o"));
            body(w);
            w.WriteEndObject();
        }
        var line = Encoding.UTF8.GetString(ms.ToArray());
        lock (_lock) _writer.WriteLine(line);
    }

    public void Dispose() => _writer.Dispose();
}
