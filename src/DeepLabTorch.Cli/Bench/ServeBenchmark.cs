using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using DeepLabTorch.Data;
using DeepLabTorch.Runtime;
using Microsoft.Extensions.Logging;
using static TorchSharp.torch;

namespace DeepLabTorch.Cli.Bench;

/// <summary>
/// `deeplab serve` under load on loopback: a fixed set of images POSTed to /v1/segment by C concurrent clients (each
/// sends its next request when its last answer is in), N requests per concurrency level after a warm-up at that level;
/// per level the client-side latency percentiles, images per second, errors, the batches the server formed (from
/// /metrics) and the server's resident memory before and after. Then `deeplab predict --batch-size B` on the same
/// images, as the batched rate the server is measured against.
/// </summary>
public sealed partial class ServeBenchmark : IBenchmark
{
    public string Name => "serve";
    public string Description => "deeplab serve under load on loopback vs predict --batch-size 8 (images=DIR count=48 weights=FILE, or url=URL pid=PID for a running server; " +
        "levels=1,4,16 requests=96 warmup_per_client=2 max_batch=8 max_wait_ms=10 queue=64 precision=float32 predict=true predict_batch=8 predict_rounds=1); --threads: the server's and predict's";

    /// <summary>The goals of issue 23: c16 at 0.9x predict's batched rate, and p99 at most 3x p50 at concurrency 1.</summary>
    private const double ThroughputGoal = 0.9, TailGoal = 3.0;

    public JsonObject Run(IReadOnlyDictionary<string, string> args, ILogger log)
    {
        int Int(string key, int fallback) => args.TryGetValue(key, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
        int count = Int("count", 48), requests = Int("requests", 96), warmupPerClient = Int("warmup_per_client", 2);
        int maxBatch = Int("max_batch", 8), maxWaitMs = Int("max_wait_ms", 10), queue = Int("queue", 64);
        int predictBatch = Int("predict_batch", 8), predictRounds = Int("predict_rounds", 1);
        var levels = args.GetValueOrDefault("levels", "1,4,16").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => int.Parse(l, CultureInfo.InvariantCulture)).ToArray();
        var precision = args.GetValueOrDefault("precision", "float32");
        bool runPredict = args.GetValueOrDefault("predict", "true") != "false";
        string? url = args.GetValueOrDefault("url");
        string? weights = args.GetValueOrDefault("weights");
        int threads = get_num_threads();
        if (count < 1 || requests < 1 || warmupPerClient < 0 || levels.Length == 0 || levels.Any(l => l < 1) || predictBatch < 1 || predictRounds < 1)
            throw new UserException("bench serve: count, requests, predict_batch, predict_rounds and every level must be positive, warmup_per_client >= 0");
        if (url is null && weights is null) throw new UserException("bench serve: give weights=FILE (the server is started) or url=URL [pid=PID] (a running one)");
        if (runPredict && weights is null) throw new UserException("bench serve: predict=true needs weights=FILE (or predict=false)");
        if (!args.TryGetValue("images", out var imageDir) || !Directory.Exists(imageDir)) throw new UserException("bench serve: images=DIR, a folder of .jpg/.png images");
        var files = Directory.GetFiles(imageDir).Where(f => f.EndsWith(".jpg", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".jpeg", StringComparison.OrdinalIgnoreCase)
                || f.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
            .Order(StringComparer.Ordinal).Take(count).ToList();
        if (files.Count == 0) throw new UserException($"bench serve: no .jpg or .png images in {imageDir}");
        var images = files.Select(Sample.Read).ToList();
        var sizes = images.Select(i => $"{i.Width}x{i.Height}").Distinct().ToList();

        var loadBefore = PlatformNatives.LoadAverage();
        using var server = url is null
            ? ServerChild.Start(weights!, threads, maxBatch, maxWaitMs, queue, precision, log)
            : new ServerChild(url, args.TryGetValue("pid", out var p) ? int.Parse(p, CultureInfo.InvariantCulture) : null);
        log.LogInformation("bench serve: {Url} (pid {Pid}), {Images} images ({Sizes}), levels {Levels}, {Requests} requests each",
            server.Url, server.Pid?.ToString(CultureInfo.InvariantCulture) ?? "unknown", images.Count, string.Join(", ", sizes), string.Join(",", levels), requests);
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, MaxConnectionsPerServer = 1024 })
        {
            BaseAddress = new Uri(server.Url.TrimEnd('/') + "/"), Timeout = TimeSpan.FromSeconds(300),
        };
        var results = new JsonArray();
        var summaries = new Dictionary<int, LevelSummary>();
        double? firstRss = null;
        foreach (var c in levels)
        {
            var rssBefore = server.RssMb();
            var warm = Load(client, images, c, Math.Max(4, warmupPerClient * c));
            var rssWarm = server.RssMb();
            var metricsBefore = Scrape(client);
            var level = Load(client, images, c, requests);
            var metricsAfter = Scrape(client);
            var rssAfter = server.RssMb();
            firstRss ??= rssWarm;
            summaries[c] = level;
            double batches = metricsAfter.Batches - metricsBefore.Batches, served = metricsAfter.Images - metricsBefore.Images;
            results.Add(new JsonObject
            {
                ["concurrency"] = c,
                ["requests"] = requests,
                ["ok"] = level.Ok,
                ["errors"] = level.Errors.Values.Sum() + warm.Errors.Values.Sum(),
                ["error_kinds"] = Kinds(level.Errors, warm.Errors),
                ["p50_ms"] = R(level.P(50)),
                ["p95_ms"] = R(level.P(95)),
                ["p99_ms"] = R(level.P(99)),
                ["max_ms"] = R(level.P(100)),
                ["images_per_s"] = Math.Round(level.ImagesPerSecond, 2),
                ["wall_s"] = Math.Round(level.Wall.TotalSeconds, 2),
                ["server_total_ms_p50"] = R(Percentiles.Of(level.ServerMs, 50)),
                ["mean_batch"] = batches > 0 ? Math.Round(served / batches, 2) : null,
                ["batches"] = batches,
                ["warmup_requests"] = warm.Requests,
                ["rss_mb_before"] = rssBefore,
                ["rss_mb_after_warmup"] = rssWarm,
                ["rss_mb_after"] = rssAfter,
                ["load_average_after"] = Loads(PlatformNatives.LoadAverage()),
            });
            log.LogInformation("bench serve: concurrency {C}: p50 {P50:F0} ms, p95 {P95:F0} ms, p99 {P99:F0} ms, {Ips:F2} images/s, {Errors} errors, mean batch {Batch:F1}, RSS {Before} -> {After} MiB",
                c, level.P(50), level.P(95), level.P(99), level.ImagesPerSecond, level.Errors.Values.Sum(), batches > 0 ? served / batches : 0, rssBefore, rssAfter);
        }
        var lastRss = server.RssMb();
        var exit = server.Stop(log);

        var result = new JsonObject
        {
            ["benchmark"] = "serve",
            ["machine"] = new JsonObject
            {
                ["cpu"] = PlatformNatives.CpuDescription(),
                ["nproc"] = Environment.ProcessorCount,
                ["load_average_before"] = Loads(loadBefore),
                ["load_average_after_serve"] = Loads(PlatformNatives.LoadAverage()),
            },
            ["setup"] = new JsonObject
            {
                ["images"] = $"{images.Count} {string.Join("/", sizes)} {string.Join("/", images.Select(i => i.Type).Distinct())} files from {imageDir}, request i sends image i mod {images.Count}",
                ["weights"] = weights,
                ["server"] = url is null
                    ? $"deeplab serve --weights W --port 0 --threads {threads} --max-batch {maxBatch} --max-wait-ms {maxWaitMs} --queue {queue} --precision {precision}"
                    : $"given: {url}",
                ["client"] = "HttpClient on loopback, C clients each POSTing /v1/segment (raw image body) and reading the whole palette PNG before the next; " +
                    "latency from send to the last byte; images/s = good answers / wall time of the level; warm-up requests at the level's concurrency first, not counted",
                ["percentiles"] = "linear interpolation between ranks (numpy.percentile's default)",
                ["rss"] = "the server's VmRSS (/proc/PID/status) before the level's warm-up, after it, and after the level",
                ["server_exit_code"] = exit,
            },
            ["levels"] = results,
            ["rss_mb_growth_after_first_warmup"] = firstRss is double f && lastRss >= 0 && f >= 0 ? Math.Round(lastRss - f, 1) : null,
        };

        if (runPredict)
        {
            var predict = PredictRate(weights!, files, predictBatch, threads, precision, predictRounds, log);
            result["predict"] = predict;
            result["machine"]!["load_average_after_predict"] = Loads(PlatformNatives.LoadAverage());
            var top = levels.Max();
            double steady = predict["marginal_images_per_s"]!.GetValue<double>(), whole = predict["images_per_s"]!.GetValue<double>();
            var throughput = summaries[top].ImagesPerSecond;
            var goals = new JsonObject
            {
                [$"c{top}_over_predict_b{predictBatch}"] = R(throughput / steady, 3),
                [$"c{top}_over_predict_b{predictBatch}_whole_run"] = R(throughput / whole, 3),
                ["throughput_goal"] = $">= {ThroughputGoal} (against predict's steady rate, first batch excluded, as the server is warmed up)",
                ["throughput_met"] = top >= 16 && throughput / steady >= ThroughputGoal,
            };
            if (summaries.TryGetValue(1, out var one))
            {
                goals["c1_p99_over_p50"] = R(one.P(99) / one.P(50), 3);
                goals["tail_goal"] = $"<= {TailGoal}";
                goals["tail_met"] = one.P(99) / one.P(50) <= TailGoal;
            }
            goals["errors"] = summaries.Values.Sum(s => s.Errors.Values.Sum());
            result["goals"] = goals;
        }
        return result;
    }

    /// <summary>Rounded, or null (JSON has no NaN) where a level had no good answer.</summary>
    private static double? R(double ms, int digits = 1) => double.IsFinite(ms) ? Math.Round(ms, digits) : null;

    private static JsonArray? Loads(double[]? loads) => loads is null ? null : new JsonArray(loads.Select(l => (JsonNode?)l).ToArray());

    private static JsonObject Kinds(params IReadOnlyDictionary<string, int>[] counts)
    {
        var all = new JsonObject();
        foreach (var (kind, n) in counts.SelectMany(c => c).GroupBy(p => p.Key, p => p.Value).Select(g => (g.Key, g.Sum())))
            all[kind] = n;
        return all;
    }

    /// <summary>An image file as the clients send it, with its size (to check the answer's).</summary>
    private sealed record Sample(byte[] Bytes, string Type, int Width, int Height)
    {
        public static Sample Read(string path)
        {
            var bytes = File.ReadAllBytes(path);
            var (_, h, w) = ImageCodec.DecodeImage(path, bytes);
            return new Sample(bytes, path.EndsWith(".png", StringComparison.OrdinalIgnoreCase) ? "image/png" : "image/jpeg", w, h);
        }
    }

    /// <summary>One level's outcome: the latencies of the good answers, the failures by kind, the wall time.</summary>
    private sealed record LevelSummary(int Requests, List<double> LatencyMs, List<double> ServerMs, IReadOnlyDictionary<string, int> Errors, TimeSpan Wall)
    {
        public int Ok => LatencyMs.Count;
        public double ImagesPerSecond => Ok / Math.Max(1e-9, Wall.TotalSeconds);
        public double P(double p) => Percentiles.Of(LatencyMs, p);
    }

    /// <summary>
    /// <paramref name="requests"/> POSTs from <paramref name="concurrency"/> clients, each sending its next request
    /// (the next image in the cycle) when its last answer is read. A good answer is 200 with a PNG of the image's size.
    /// </summary>
    private static LevelSummary Load(HttpClient client, IReadOnlyList<Sample> images, int concurrency, int requests)
    {
        var latencies = new ConcurrentBag<double>();
        var serverMs = new ConcurrentBag<double>();
        var errors = new ConcurrentDictionary<string, int>();
        int next = -1;
        var clock = Stopwatch.StartNew();
        async Task Client()
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < requests)
            {
                var image = images[i % images.Count];
                var start = clock.Elapsed;
                try
                {
                    using var content = new ByteArrayContent(image.Bytes);
                    content.Headers.ContentType = new MediaTypeHeaderValue(image.Type);
                    using var response = await client.PostAsync("v1/segment", content).ConfigureAwait(false);
                    var body = await response.Content.ReadAsByteArrayAsync().ConfigureAwait(false);
                    var ms = (clock.Elapsed - start).TotalMilliseconds;
                    if ((int)response.StatusCode != 200) errors.AddOrUpdate($"HTTP {(int)response.StatusCode}", 1, (_, n) => n + 1);
                    else if (!IsPng(body, image.Width, image.Height)) errors.AddOrUpdate("not a PNG of the image's size", 1, (_, n) => n + 1);
                    else
                    {
                        latencies.Add(ms);
                        if (response.Headers.TryGetValues("Server-Timing", out var timing) && ServerTotal(timing.FirstOrDefault()) is double total) serverMs.Add(total);
                    }
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
                {
                    errors.AddOrUpdate(e.GetType().Name, 1, (_, n) => n + 1);
                }
            }
        }
        Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(Client))).GetAwaiter().GetResult();
        var wall = clock.Elapsed;
        return new LevelSummary(requests, latencies.ToList(), serverMs.ToList(), new Dictionary<string, int>(errors), wall);
    }

    /// <summary>True for a PNG whose header (IHDR) says <paramref name="width"/> x <paramref name="height"/>.</summary>
    internal static bool IsPng(ReadOnlySpan<byte> png, int width, int height)
    {
        ReadOnlySpan<byte> signature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];
        if (png.Length < 24 || !png[..8].SequenceEqual(signature) || !png.Slice(12, 4).SequenceEqual("IHDR"u8)) return false;
        int w = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.Slice(16, 4));
        int h = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.Slice(20, 4));
        return w == width && h == height;
    }

    /// <summary>The server's own time in ms from its Server-Timing header ("total;dur=12.5"), or null.</summary>
    internal static double? ServerTotal(string? header) =>
        header is not null && ServerTiming().Match(header) is { Success: true } m ? double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : null;

    [GeneratedRegex(@"total;dur=([0-9.]+)")]
    private static partial Regex ServerTiming();

    /// <summary>Batches and images the server has run so far, from its Prometheus scrape (deeplab_batch_size_count and _sum).</summary>
    private static (double Batches, double Images) Scrape(HttpClient client)
    {
        var text = client.GetStringAsync("metrics").GetAwaiter().GetResult();
        double Value(string name) => text.Split('\n').Where(l => l.StartsWith(name + " ", StringComparison.Ordinal))
            .Select(l => double.Parse(l[(name.Length + 1)..], CultureInfo.InvariantCulture)).FirstOrDefault();
        return (Value("deeplab_batch_size_count"), Value("deeplab_batch_size_sum"));
    }

    /// <summary>
    /// `deeplab predict --batch-size B` on the same images, in a child process: its own rate (model loading excluded:
    /// predict times from its first image), and the steady rate from a run on the first B images subtracted from a
    /// run on all (the first batch's one-time set-up and the pipeline's fill and drain cancel).
    /// </summary>
    private static JsonObject PredictRate(string weights, IReadOnlyList<string> files, int batch, int threads, string precision, int rounds, ILogger log)
    {
        if (files.Count <= batch) throw new UserException($"bench serve: predict's steady rate needs more than predict_batch={batch} images (count=)");
        var whole = new List<double>();
        var marginal = new List<double>();
        var seconds = new List<(double Small, double Large)>();
        for (int r = 0; r < rounds; r++)
        {
            var small = Predict(weights, files.Take(batch).ToList(), batch, threads, precision);
            var large = Predict(weights, files, batch, threads, precision);
            whole.Add(files.Count / large);
            marginal.Add((files.Count - batch) / Math.Max(1e-9, large - small));
            seconds.Add((small, large));
            log.LogInformation("bench serve: predict --batch-size {Batch}: {Small:F2} s for {B} images, {Large:F2} s for {N}: {Whole:F2} images/s, steady {Steady:F2}",
                batch, small, batch, large, files.Count, whole[^1], marginal[^1]);
        }
        return new JsonObject
        {
            ["command"] = $"deeplab predict --weights W --input <{files.Count} files> --output TMP --batch-size {batch} --threads {threads} --precision {precision} -q",
            ["images"] = files.Count,
            ["images_per_s"] = Math.Round(Percentiles.Of(whole, 50), 2),
            ["marginal_images_per_s"] = Math.Round(Percentiles.Of(marginal, 50), 2),
            ["seconds_first_batch_and_all"] = new JsonArray(seconds.Select(s => (JsonNode?)new JsonArray(Math.Round(s.Small, 3), Math.Round(s.Large, 3))).ToArray()),
            ["note"] = "images_per_s is predict's own figure (from its first image to its last PNG written: decode, forward, PNG, overlapped; model loading excluded, " +
                "the first batch's set-up included); marginal_images_per_s = (N - B) / (t(N images) - t(first B)), the steady rate; median over rounds",
        };
    }

    /// <summary>One predict run; its own elapsed seconds (images / the images/s it prints, for more digits than its seconds).</summary>
    private static double Predict(string weights, IReadOnlyList<string> files, int batch, int threads, string precision)
    {
        var output = Path.Combine(Path.GetTempPath(), "deeplab-bench-serve-" + Guid.NewGuid().ToString("N"));
        try
        {
            var psi = SelfCommand();
            foreach (var a in new[] { "predict", "--weights", weights, "--output", output, "--batch-size", batch.ToString(CultureInfo.InvariantCulture),
                         "--threads", threads.ToString(CultureInfo.InvariantCulture), "--precision", precision, "-q", "--input" })
                psi.ArgumentList.Add(a);
            foreach (var f in files) psi.ArgumentList.Add(f);
            using var p = Process.Start(psi)!;
            var err = p.StandardError.ReadToEndAsync();
            var stdout = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            var m = PredictLine().Match(stdout);
            if (p.ExitCode != 0 || !m.Success)
                throw new UserException($"bench serve: predict failed (exit {p.ExitCode}): {stdout.Trim()} {err.Result.Trim()}");
            int n = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
            if (n != files.Count) throw new UserException($"bench serve: predict segmented {n} of {files.Count} images: {stdout.Trim()}");
            return n / double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
        }
        finally
        {
            if (Directory.Exists(output)) Directory.Delete(output, recursive: true);
        }
    }

    [GeneratedRegex(@"predict: (\d+) image\(s\) in [0-9.]+ s \(([0-9.]+) images/s\); 0 failed")]
    private static partial Regex PredictLine();

    /// <summary>This program (`dotnet deeplab.dll` or the apphost) as a child process with its output read.</summary>
    private static ProcessStartInfo SelfCommand()
    {
        var host = Environment.ProcessPath ?? "dotnet";
        var psi = new ProcessStartInfo(host) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(host) == "dotnet") psi.ArgumentList.Add(typeof(ServeBenchmark).Assembly.Location);
        return psi;
    }

    /// <summary>The server: a `deeplab serve --port 0` child (stopped with SIGTERM), or one given by its address.</summary>
    private sealed partial class ServerChild : IDisposable
    {
        private readonly Process? _process;
        private readonly StringBuilder _stderr = new();

        public ServerChild(string url, int? pid)
        {
            Url = url;
            Pid = pid;
        }

        private ServerChild(Process process, string url) : this(url, process.Id)
        {
            _process = process;
            _ = Task.Run(async () =>
            {
                string? line;
                while ((line = await process.StandardError.ReadLineAsync().ConfigureAwait(false)) != null)
                    lock (_stderr) _stderr.AppendLine(line);
            });
            _ = process.StandardOutput.ReadToEndAsync();
        }

        public string Url { get; }
        public int? Pid { get; }

        public double RssMb() => Pid is int pid ? PlatformNatives.ProcessRssMb(pid) : -1;

        public static ServerChild Start(string weights, int threads, int maxBatch, int maxWaitMs, int queue, string precision, ILogger log)
        {
            var psi = SelfCommand();
            foreach (var a in new[] { "serve", "--weights", weights, "--port", "0", "--threads", threads.ToString(CultureInfo.InvariantCulture),
                         "--max-batch", maxBatch.ToString(CultureInfo.InvariantCulture), "--max-wait-ms", maxWaitMs.ToString(CultureInfo.InvariantCulture),
                         "--queue", queue.ToString(CultureInfo.InvariantCulture), "--precision", precision })
                psi.ArgumentList.Add(a);
            var p = Process.Start(psi)!;
            var read = Task.Run(() =>
            {
                string? line;
                while ((line = p.StandardOutput.ReadLine()) != null)
                    if (Address().Match(line) is { Success: true } m) return m.Value;
                return null;
            });
            if (!read.Wait(TimeSpan.FromMinutes(3)) || read.Result is null)
            {
                var err = p.HasExited ? p.StandardError.ReadToEnd() : "";
                if (!p.HasExited) p.Kill(entireProcessTree: true);
                p.Dispose();
                throw new UserException($"bench serve: deeplab serve did not start: {err.Trim()}");
            }
            log.LogInformation("bench serve: started deeplab serve (pid {Pid}) on {Url}", p.Id, read.Result);
            return new ServerChild(p, read.Result);
        }

        /// <summary>
        /// SIGTERM and the exit code for a server this started (killed after a minute), with the end of its log when it
        /// did not exit cleanly; null for a given one.
        /// </summary>
        public int? Stop(ILogger log)
        {
            if (_process is null) return null;
            bool early = _process.HasExited;
            if (!early) PlatformNatives.Signal(_process.Id, 15);
            if (!_process.WaitForExit(60_000)) _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
            if (early || _process.ExitCode != 0)
            {
                string tail;
                lock (_stderr) tail = string.Join('\n', _stderr.ToString().Split('\n').TakeLast(20));
                log.LogWarning("bench serve: the server {How} with code {Code}; its last lines:\n{Tail}", early ? "had exited before the end" : "exited",
                    _process.ExitCode, tail);
            }
            return _process.ExitCode;
        }

        public void Dispose()
        {
            if (_process is null) return;
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit();
            }
            _process.Dispose();
        }

        [GeneratedRegex(@"http://[0-9.\[\]:]+")]
        private static partial Regex Address();
    }
}
