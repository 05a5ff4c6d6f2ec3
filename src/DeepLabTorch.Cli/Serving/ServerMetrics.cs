using System.Globalization;
using System.Text;

namespace DeepLabTorch.Cli.Serving;

/// <summary>
/// The server's counters in Prometheus' text format (version 0.0.4): requests by route and status, request
/// latency and batch-size histograms, the queue depth, images served, and images per second over the last
/// minute.
/// </summary>
internal sealed class ServerMetrics
{
    private static readonly double[] LatencyBuckets = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 };
    private static readonly double[] BatchBuckets = { 1, 2, 4, 8, 16, 32, 64 };

    private readonly object _gate = new();
    private readonly Dictionary<(string Route, int Status), long> _requests = new();
    private readonly Dictionary<string, Histogram> _latency = new();
    private readonly Histogram _batches = new(BatchBuckets);
    private readonly Histogram _batchSeconds = new(LatencyBuckets);
    private readonly Queue<(DateTime At, int Images)> _recent = new();
    private long _images;
    private int _queueDepth;

    private sealed class Histogram(double[] bounds)
    {
        public double[] Bounds { get; } = bounds;
        public long[] Counts { get; } = new long[bounds.Length];
        public double Sum;
        public long Count;

        public void Observe(double value)
        {
            for (int i = 0; i < Bounds.Length; i++)
                if (value <= Bounds[i]) Counts[i]++;
            Sum += value;
            Count++;
        }
    }

    public void Request(string route, int status, double seconds)
    {
        lock (_gate)
        {
            _requests[(route, status)] = _requests.GetValueOrDefault((route, status)) + 1;
            if (!_latency.TryGetValue(route, out var h)) _latency[route] = h = new Histogram(LatencyBuckets);
            h.Observe(seconds);
        }
    }

    public void Batch(int images, double seconds)
    {
        lock (_gate)
        {
            _batches.Observe(images);
            _batchSeconds.Observe(seconds);
            _images += images;
            _recent.Enqueue((DateTime.UtcNow, images));
            Trim(DateTime.UtcNow);
        }
    }

    public void QueueDepth(int depth) => Volatile.Write(ref _queueDepth, depth);

    private void Trim(DateTime now)
    {
        while (_recent.Count > 0 && now - _recent.Peek().At > TimeSpan.FromMinutes(1)) _recent.Dequeue();
    }

    /// <summary>The scrape, with <paramref name="depth"/> as the queue depth now.</summary>
    public string Render(int depth)
    {
        var sb = new StringBuilder();
        void Line(FormattableString s) => sb.Append(s.ToString(CultureInfo.InvariantCulture)).Append('\n');
        lock (_gate)
        {
            Line($"# HELP deeplab_requests_total HTTP requests by route and status.");
            Line($"# TYPE deeplab_requests_total counter");
            foreach (var ((route, status), n) in _requests.OrderBy(p => p.Key.Route, StringComparer.Ordinal).ThenBy(p => p.Key.Status))
                Line($"deeplab_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
            Line($"# HELP deeplab_request_duration_seconds Time from a request's arrival to its answer.");
            Line($"# TYPE deeplab_request_duration_seconds histogram");
            foreach (var (route, h) in _latency.OrderBy(p => p.Key, StringComparer.Ordinal))
                Write(sb, "deeplab_request_duration_seconds", $"route=\"{route}\",", h);
            Line($"# HELP deeplab_batch_size Images per forward pass.");
            Line($"# TYPE deeplab_batch_size histogram");
            Write(sb, "deeplab_batch_size", "", _batches);
            Line($"# HELP deeplab_batch_duration_seconds Time of one forward pass and its outputs.");
            Line($"# TYPE deeplab_batch_duration_seconds histogram");
            Write(sb, "deeplab_batch_duration_seconds", "", _batchSeconds);
            Line($"# HELP deeplab_queue_depth Requests waiting for the model.");
            Line($"# TYPE deeplab_queue_depth gauge");
            Line($"deeplab_queue_depth {depth}");
            Line($"# HELP deeplab_images_total Images run through the model.");
            Line($"# TYPE deeplab_images_total counter");
            Line($"deeplab_images_total {_images}");
            var now = DateTime.UtcNow;
            Trim(now);
            Line($"# HELP deeplab_images_per_second Images per second over the last minute.");
            Line($"# TYPE deeplab_images_per_second gauge");
            Line($"deeplab_images_per_second {_recent.Sum(r => r.Images) / 60.0:0.###}");
        }
        return sb.ToString();
    }

    private static void Write(StringBuilder sb, string name, string labels, Histogram h)
    {
        for (int i = 0; i < h.Bounds.Length; i++)
            sb.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{{labels}le=\"{h.Bounds[i]}\"}} {h.Counts[i]}\n");
        sb.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{{labels}le=\"+Inf\"}} {h.Count}\n");
        var plain = labels.TrimEnd(',');
        var braces = plain.Length > 0 ? "{" + plain + "}" : "";
        sb.Append(CultureInfo.InvariantCulture, $"{name}_sum{braces} {h.Sum:0.######}\n");
        sb.Append(CultureInfo.InvariantCulture, $"{name}_count{braces} {h.Count}\n");
    }
}
