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
/// sends its next request when its last answer is in), N requests per concurrency level, after a warm-up at that level;
/// per level the client-side latency percentiles, images per second, errors, the batches the server formed and its
/// time per batch (from /metrics), its CPU time per image and its resident memory. Then, in the same round,
/// `deeplab predict --batch-size B` on the same images, as the batched rate the server is measured against; rounds
/// alternate the two, so that a shared machine's load falls on both alike.
/// </summary>
public sealed class ServeBenchmark : IBenchmark
{
    public string Name => "serve";
    public string Description => "deeplab serve under load on loopback vs predict --batch-size 8 (images=DIR count=48 weights=FILE, or url=URL pid=PID for a running server; " +
        "levels=1,4,16 requests=48 rounds=1 warmup_per_client=2 max_batch=8 max_wait_ms=10 queue=64 precision=float32 predict=true predict_batch=8); --threads: the server's and predict's";

    /// <summary>The goals of issue 23: c16 at 0.9x predict's batched rate, and p99 at most 3x p50 at concurrency 1.</summary>
    private const double ThroughputGoal = 0.9, TailGoal = 3.0;

    public JsonObject Run(IReadOnlyDictionary<string, string> args, ILogger log)
    {
        int Int(string key, int fallback) => args.TryGetValue(key, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
        int count = Int("count", 48), requests = Int("requests", 48), warmupPerClient = Int("warmup_per_client", 2), rounds = Int("rounds", 1);
        int maxBatch = Int("max_batch", 8), maxWaitMs = Int("max_wait_ms", 10), queue = Int("queue", 64), predictBatch = Int("predict_batch", 8);
        var levels = args.GetValueOrDefault("levels", "1,4,16").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => int.Parse(l, CultureInfo.InvariantCulture)).Distinct().ToArray();
        var precision = args.GetValueOrDefault("precision", "float32");
        bool runPredict = args.GetValueOrDefault("predict", "true") != "false";
        string? url = args.GetValueOrDefault("url");
        string? weights = args.GetValueOrDefault("weights");
        int threads = get_num_threads();
        if (count < 1 || requests < 1 || rounds < 1 || warmupPerClient < 0 || levels.Length == 0 || levels.Any(l => l < 1) || predictBatch < 1)
            throw new UserException("bench serve: count, requests, rounds, predict_batch and every level must be positive, warmup_per_client >= 0");
        if (url is null && weights is null) throw new UserException("bench serve: give weights=FILE (the server is started) or url=URL [pid=PID] (a running one)");
        if (runPredict && weights is null) throw new UserException("bench serve: predict=true needs weights=FILE (or predict=false)");
        if (!args.TryGetValue("images", out var imageDir) || !Directory.Exists(imageDir)) throw new UserException("bench serve: images=DIR, a folder of .jpg/.png images");
        var files = Directory.GetFiles(imageDir).Where(f => f.EndsWith(".jpg", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".jpeg", StringComparison.OrdinalIgnoreCase)
                || f.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
            .Order(StringComparer.Ordinal).Take(count).ToList();
        if (files.Count == 0) throw new UserException($"bench serve: no .jpg or .png images in {imageDir}");
        if (runPredict && files.Count <= predictBatch)
            throw new UserException($"bench serve: predict's steady rate needs more than predict_batch={predictBatch} images; give count= more");
        var images = files.Select(Sample.Read).ToList();
        var sizes = images.Select(i => $"{i.Width}x{i.Height}").Distinct().ToList();

        var loadBefore = PlatformNatives.LoadAverage();
        using var server = url is null
            ? ServerChild.Start(weights!, threads, maxBatch, maxWaitMs, queue, precision, log)
            : new ServerChild(url, args.TryGetValue("pid", out var p) ? int.Parse(p, CultureInfo.InvariantCulture) : null);
        log.LogInformation("bench serve: {Url} (pid {Pid}), {Images} images ({Sizes}), levels {Levels}, {Requests} requests each, {Rounds} round(s)",
            server.Url, server.Pid?.ToString(CultureInfo.InvariantCulture) ?? "unknown", images.Count, string.Join(", ", sizes), string.Join(",", levels), requests, rounds);
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, MaxConnectionsPerServer = 1024 })
        {
            BaseAddress = new Uri(server.Url.TrimEnd('/') + "/"), Timeout = TimeSpan.FromSeconds(300),
        };
        var measured = levels.ToDictionary(c => c, _ => new List<Measured>());
        var warmups = new Dictionary<int, (LevelSummary Load, double RssBefore, double RssAfter)>();
        var predictRuns = new List<(double Small, double Large)>();
        for (int r = 0; r < rounds; r++)
        {
            foreach (var c in levels)
            {
                if (r == 0)
                {
                    var before = server.RssMb();
                    warmups[c] = (Load(client, images, c, Math.Max(4, warmupPerClient * c)), before, server.RssMb());
                }
                var m0 = Scrape(client);
                var cpu0 = server.CpuSeconds();
                var level = Load(client, images, c, requests);
                var m1 = Scrape(client);
                var one = new Measured(level, m1.Batches - m0.Batches, m1.Images - m0.Images, m1.BatchSeconds - m0.BatchSeconds, server.CpuSeconds() - cpu0, server.RssMb());
                measured[c].Add(one);
                log.LogInformation("bench serve: round {Round}, concurrency {C}: p50 {P50:F0} ms, p95 {P95:F0} ms, p99 {P99:F0} ms, {Ips:F2} images/s, {Errors} errors, " +
                    "mean batch {Batch:F1} in {BatchMs:F0} ms, server CPU {Cpu:F2} s per image, RSS {Rss} MiB",
                    r + 1, c, level.P(50), level.P(95), level.P(99), level.ImagesPerSecond, level.Errors.Values.Sum(), one.Images / Math.Max(1, one.Batches),
                    1000 * one.BatchSeconds / Math.Max(1, one.Batches), one.CpuSeconds / Math.Max(1, one.Images), one.RssAfter);
            }
            if (runPredict)
            {
                // The server idles meanwhile (no requests), so the two alternate on the same machine.
                var small = Predict(weights!, files.Take(predictBatch).ToList(), predictBatch, threads, precision);
                var large = Predict(weights!, files, predictBatch, threads, precision);
                predictRuns.Add((small, large));
                log.LogInformation("bench serve: round {Round}, predict --batch-size {Batch}: {Small:F2} s for {B} images, {Large:F2} s for {N}: {Whole:F2} images/s, steady {Steady:F2}",
                    r + 1, predictBatch, small, predictBatch, large, files.Count, files.Count / large, (files.Count - predictBatch) / Math.Max(1e-9, large - small));
            }
        }
        var lastRss = server.RssMb();
        var exit = server.Stop(log);

        var results = new JsonArray();
        foreach (var c in levels)
        {
            var runs = measured[c];
            var latencies = runs.SelectMany(m => m.Load.LatencyMs).ToList();
            double batches = runs.Sum(m => m.Batches), served = runs.Sum(m => m.Images);
            var warm = warmups[c];
            results.Add(new JsonObject
            {
                ["concurrency"] = c,
                ["requests"] = requests * rounds,
                ["ok"] = latencies.Count,
                ["errors"] = runs.Sum(m => m.Load.Errors.Values.Sum()) + warm.Load.Errors.Values.Sum(),
                ["error_kinds"] = Kinds(runs.Select(m => m.Load.Errors).Append(warm.Load.Errors).ToArray()),
                ["p50_ms"] = R(Percentiles.Of(latencies, 50)),
                ["p95_ms"] = R(Percentiles.Of(latencies, 95)),
                ["p99_ms"] = R(Percentiles.Of(latencies, 99)),
                ["max_ms"] = R(Percentiles.Of(latencies, 100)),
                ["images_per_s"] = R(Percentiles.Of(runs.Select(m => m.Load.ImagesPerSecond), 50), 2),
                ["images_per_s_rounds"] = Numbers(runs.Select(m => m.Load.ImagesPerSecond), 2),
                ["server_total_ms_p50"] = R(Percentiles.Of(runs.SelectMany(m => m.Load.ServerMs), 50)),
                ["mean_batch"] = batches > 0 ? R(served / batches, 2) : null,
                ["batch_ms_mean"] = batches > 0 ? R(1000 * runs.Sum(m => m.BatchSeconds) / batches) : null,
                ["server_cpu_s_per_image"] = served > 0 && runs.All(m => m.CpuSeconds >= 0) ? R(runs.Sum(m => m.CpuSeconds) / served, 3) : null,
                ["warmup_requests"] = warm.Load.Requests,
                ["rss_mb_before_warmup"] = warm.RssBefore,
                ["rss_mb_after_warmup"] = warm.RssAfter,
                ["rss_mb_after_rounds"] = Numbers(runs.Select(m => m.RssAfter), 1),
            });
        }
        // After the first round every level's batch has run once; the heap holds what the largest needs from there on.
        var firstRound = measured[levels[^1]][0].RssAfter;
        var result = new JsonObject
        {
            ["benchmark"] = "serve",
            ["machine"] = new JsonObject
            {
                ["cpu"] = CpuIdentity.Current?.Describe() ?? "not x86",
                ["nproc"] = Environment.ProcessorCount,
                ["load_average_before"] = Loads(loadBefore),
                ["load_average_after"] = Loads(PlatformNatives.LoadAverage()),
            },
            ["setup"] = new JsonObject
            {
                ["images"] = $"{images.Count} {string.Join("/", sizes)} {string.Join("/", images.Select(i => i.Type).Distinct())} files from {imageDir}, request i sends image i mod {images.Count}",
                ["weights"] = weights,
                ["server"] = url is null
                    ? $"deeplab serve --weights W --port 0 --threads {threads} --max-batch {maxBatch} --max-wait-ms {maxWaitMs} --queue {queue} --precision {precision}"
                    : $"given: {url}",
                ["client"] = "HttpClient on loopback, C clients each POSTing /v1/segment (raw image body) and reading the whole palette PNG before the next; " +
                    "latency from send to the last byte; images/s = good answers / wall time of the level; a warm-up at each level's concurrency in the first round, not counted",
                ["rounds"] = rounds,
                ["rounds_note"] = "each round runs every level, then predict (the server idles meanwhile); latency percentiles pool the rounds, images/s is the median round",
                ["percentiles"] = "linear interpolation between ranks (numpy.percentile's default)",
                ["rss"] = "the server's VmRSS (/proc/PID/status) before a level's warm-up, after it, and after each round of the level",
                ["server_exit_code"] = exit,
            },
            ["levels"] = results,
            ["rss_mb_after_first_round"] = firstRound,
            ["rss_mb_at_end"] = lastRss,
            ["rss_mb_growth_after_first_round"] = lastRss >= 0 && firstRound >= 0 ? Math.Round(lastRss - firstRound, 1) : null,
        };

        if (runPredict)
        {
            var whole = predictRuns.Select(t => files.Count / t.Large).ToList();
            var steady = predictRuns.Select(t => (files.Count - predictBatch) / Math.Max(1e-9, t.Large - t.Small)).ToList();
            result["predict"] = new JsonObject
            {
                ["command"] = $"deeplab predict --weights W --input <{files.Count} files> --output TMP --batch-size {predictBatch} --threads {threads} --precision {precision} -q",
                ["images"] = files.Count,
                ["images_per_s"] = R(Percentiles.Of(whole, 50), 2),
                ["marginal_images_per_s"] = R(Percentiles.Of(steady, 50), 2),
                ["marginal_images_per_s_rounds"] = Numbers(steady, 2),
                ["seconds_first_batch_and_all"] = new JsonArray(predictRuns.Select(t => (JsonNode?)new JsonArray(Math.Round(t.Small, 3), Math.Round(t.Large, 3))).ToArray()),
                ["note"] = "images_per_s is predict's own figure (from its first image to its last PNG written: decode, forward, PNG, overlapped; model loading excluded, " +
                    $"the first batch's set-up included); marginal_images_per_s = (N - B) / (t(N images) - t(first B)), the steady rate, B = {predictBatch}; median over rounds",
            };
            var top = levels.Max();
            // Each round's server rate over the same round's predict rate, then the median: the pairs ran minutes apart at most.
            var paired = measured[top].Zip(steady, (m, s) => m.Load.ImagesPerSecond / s).ToList();
            var pairedWhole = measured[top].Zip(whole, (m, w) => m.Load.ImagesPerSecond / w).ToList();
            double ratio = Percentiles.Of(paired, 50);
            var goals = new JsonObject
            {
                [$"c{top}_over_predict_b{predictBatch}"] = R(ratio, 3),
                [$"c{top}_over_predict_b{predictBatch}_rounds"] = Numbers(paired, 3),
                [$"c{top}_over_predict_b{predictBatch}_whole_run"] = R(Percentiles.Of(pairedWhole, 50), 3),
                ["throughput_goal"] = $">= {ThroughputGoal.ToString(CultureInfo.InvariantCulture)} at concurrency 16, against predict's steady rate (its first batch excluded, as the server's warm-up is); median of each round's ratio",
                ["throughput_met"] = top >= 16 && ratio >= ThroughputGoal,
            };
            if (measured.TryGetValue(1, out var c1))
            {
                var lat = c1.SelectMany(m => m.Load.LatencyMs).ToList();
                double tail = Percentiles.Of(lat, 99) / Percentiles.Of(lat, 50);
                goals["c1_p99_over_p50"] = R(tail, 3);
                goals["tail_goal"] = $"<= {TailGoal.ToString(CultureInfo.InvariantCulture)}";
                goals["tail_met"] = tail <= TailGoal;
            }
            goals["errors"] = measured.Values.SelectMany(m => m).Sum(m => m.Load.Errors.Values.Sum()) + warmups.Values.Sum(w => w.Load.Errors.Values.Sum());
            result["goals"] = goals;
        }
        return result;
    }

    /// <summary>One round of one level: the client's view, and the server's batches, batch time, CPU time and VmRSS after it.</summary>
    private sealed record Measured(LevelSummary Load, double Batches, double Images, double BatchSeconds, double CpuSeconds, double RssAfter);

    private static JsonArray Numbers(IEnumerable<double> values, int digits) => new(values.Select(v => (JsonNode?)R(v, digits)).ToArray());

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
        header is not null && ServerTimingPattern.Match(header) is { Success: true } m ? double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : null;

    // Plain Regex objects, not [GeneratedRegex]: the source scans in the tests compile without source generators.
    private static readonly Regex ServerTimingPattern = new(@"total;dur=([0-9.]+)", RegexOptions.CultureInvariant);

    /// <summary>
    /// Batches and images the server has run so far and the seconds its inference thread spent on them, from its
    /// Prometheus scrape (deeplab_batch_size_count and _sum, deeplab_batch_duration_seconds_sum).
    /// </summary>
    private static (double Batches, double Images, double BatchSeconds) Scrape(HttpClient client)
    {
        var text = client.GetStringAsync("metrics").GetAwaiter().GetResult();
        double Value(string name) => text.Split('\n').Where(l => l.StartsWith(name + " ", StringComparison.Ordinal))
            .Select(l => double.Parse(l[(name.Length + 1)..], CultureInfo.InvariantCulture)).FirstOrDefault();
        return (Value("deeplab_batch_size_count"), Value("deeplab_batch_size_sum"), Value("deeplab_batch_duration_seconds_sum"));
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
            var m = PredictLinePattern.Match(stdout);
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

    private static readonly Regex PredictLinePattern = new(@"predict: (\d+) image\(s\) in [0-9.]+ s \(([0-9.]+) images/s\); 0 failed", RegexOptions.CultureInvariant);

    /// <summary>This program (`dotnet deeplab.dll` or the apphost) as a child process with its output read.</summary>
    private static ProcessStartInfo SelfCommand()
    {
        var host = Environment.ProcessPath ?? "dotnet";
        var psi = new ProcessStartInfo(host) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(host) == "dotnet") psi.ArgumentList.Add(typeof(ServeBenchmark).Assembly.Location);
        return psi;
    }

    /// <summary>The server: a `deeplab serve --port 0` child (stopped with SIGTERM), or one given by its address.</summary>
    private sealed class ServerChild : IDisposable
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

        /// <summary>The server's CPU time so far (user and system, all threads) in seconds, or -1 where it cannot be read.</summary>
        public double CpuSeconds()
        {
            try
            {
                if (_process is not null)
                {
                    _process.Refresh();
                    return _process.TotalProcessorTime.TotalSeconds;
                }
                if (Pid is not int pid) return -1;
                using var other = Process.GetProcessById(pid);
                return other.TotalProcessorTime.TotalSeconds;
            }
            catch (Exception e) when (e is InvalidOperationException or ArgumentException or System.ComponentModel.Win32Exception or NotSupportedException)
            {
                return -1;
            }
        }

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
                    if (AddressPattern.Match(line) is { Success: true } m) return m.Value;
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

        private static readonly Regex AddressPattern = new(@"http://[0-9.\[\]:]+", RegexOptions.CultureInvariant);
    }
}
