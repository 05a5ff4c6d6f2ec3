using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using DeepLabTorch.Distributed;
using DeepLabTorch.Extensions;
using DeepLabTorch.Models;
using DeepLabTorch.Runtime;
using DeepLabTorch.Training;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Cli.Bench;

/// <summary>
/// Data-parallel training steps of DeepLabV3+ MobileNetV2 (OS16, 21 classes) on random batches, as
/// one process or as one rank of an mpirun job: step time, the time of the gradient all-reduce within
/// it (packing, Open MPI, unpacking), images per second over all processes, and an all-reduce of one
/// gradient-sized buffer on its own (bandwidth). The same protocol as scripts/bench/ddp_reference.py.
/// scripts/bench/ddp.sh runs it at 1 and 2 processes and works out the scaling efficiency.
/// </summary>
public sealed class DdpBenchmark : IBenchmark
{
    public string Name => "ddp";
    public string Description => "data-parallel train steps under mpirun or alone (crop=257 batch=4 steps=6 warmup=2 threads=1 sync_bn=false allreduce_reps=10 out=FILE)";

    public JsonObject Run(IReadOnlyDictionary<string, string> args, ILogger log)
    {
        var known = new HashSet<string> { "crop", "batch", "steps", "warmup", "threads", "sync_bn", "allreduce_reps", "out" };
        foreach (var k in args.Keys)
            if (!known.Contains(k)) throw new UserException($"bench ddp: unknown setting '{k}' (known: {string.Join(", ", known)})");
        int Int(string key, int fallback, int min)
        {
            if (!args.TryGetValue(key, out var v)) return fallback;
            return int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n >= min ? n
                : throw new UserException($"bench ddp: {key} must be a whole number >= {min}, got '{v}'");
        }
        int crop = Int("crop", 257, 33), batch = Int("batch", 4, 2), steps = Int("steps", 6, 1), warmup = Int("warmup", 2, 0);
        int threads = Int("threads", 1, 1), reps = Int("allreduce_reps", 10, 1);
        var syncBn = args.GetValueOrDefault("sync_bn", "false") == "true";

        using var group = Launcher.Join();
        TorchRuntime.EnsureLoaded();
        FlushDenormal.Set(true);
        set_num_threads(threads);
        KernelGuard.Ensure(threads, log);
        manual_seed(1);
        using var model = new DeepLabV3Plus(new ModelConfig("mobilenet", 16, 21));
        using (no_grad())
        {
            foreach (var (_, p) in model.named_parameters()) group.Broadcast(p);
            foreach (var (_, b) in model.named_buffers()) group.Broadcast(b);
        }
        if (syncBn) SyncBatchNorm.Enable(model, group);
        model.train();
        using var optimizer = SgdFactory.Create(model, 0.007, 0.9, 5e-4);
        using var gradients = new GradientAverager(model.parameters(), group);
        manual_seed(100 + group.Rank);
        using var x = randn(batch, 3, crop, crop);
        using var y = randint(0, 21, new long[] { batch, crop, crop });

        double reduceBefore = 0;
        var clock = new Stopwatch();
        for (var i = 0; i < warmup + steps; i++)
        {
            if (i == warmup)
            {
                group.Barrier();
                reduceBefore = gradients.Seconds;
                clock.Start();
            }
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            var loss = Losses.CrossEntropy(model.call(x), y, processes: group.Size);
            loss.backward();
            gradients.Average();
            optimizer.step();
        }
        clock.Stop();
        // The slowest rank sets the pace; every rank's figures are summed and averaged.
        Span<double> t = stackalloc double[] { clock.Elapsed.TotalSeconds / steps, (gradients.Seconds - reduceBefore) / steps };
        group.AllReduceSum(t);
        var stepSeconds = t[0] / group.Size;
        var reduceSeconds = t[1] / group.Size;

        // One gradient-sized all-reduce on its own.
        double allReduceMs = 0;
        if (group.IsDistributed)
        {
            using var buffer = ones(gradients.TotalBytes / 4);
            group.AllReduceSum(buffer);
            group.Barrier();
            var sw = Stopwatch.StartNew();
            for (var r = 0; r < reps; r++) group.AllReduceSum(buffer);
            allReduceMs = sw.Elapsed.TotalMilliseconds / reps;
        }
        var ringFactor = 2.0 * (group.Size - 1) / group.Size;
        var result = new JsonObject
        {
            ["processes"] = group.Size,
            ["threads_per_process"] = threads,
            ["batch_per_process"] = batch,
            ["crop"] = crop,
            ["sync_bn"] = syncBn,
            ["mpi"] = group.IsDistributed ? OpenMpi.LibraryVersion() : null,
            ["gradient_mb"] = Math.Round(gradients.TotalBytes / 1e6, 2),
            ["buckets"] = gradients.BucketBytes.Count,
            ["step_ms"] = Math.Round(stepSeconds * 1e3, 1),
            ["allreduce_ms_per_step"] = Math.Round(reduceSeconds * 1e3, 2),
            ["allreduce_fraction"] = Math.Round(reduceSeconds / stepSeconds, 4),
            ["images_per_sec"] = Math.Round(batch * group.Size / stepSeconds, 2),
            ["allreduce_gradient_ms"] = group.IsDistributed ? Math.Round(allReduceMs, 2) : null,
            ["allreduce_bus_gb_per_s"] = group.IsDistributed ? Math.Round(ringFactor * gradients.TotalBytes / (allReduceMs / 1e3) / 1e9, 2) : null,
        };
        if (group.IsRoot && args.TryGetValue("out", out var path)) File.WriteAllText(path, result.ToJsonString());
        return result;
    }
}
