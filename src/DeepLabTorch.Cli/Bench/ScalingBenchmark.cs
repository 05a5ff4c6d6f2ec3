using DeepLabTorch.Runtime;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using DeepLabTorch.Models;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DeepLabTorch.Cli.Bench;

/// <summary>
/// How cost grows with the work: train-step time (forward, loss, backward, SGD) and inference latency
/// (eval, inference mode, prepared as predict prepares its model) of one DeepLabV3+ against crop size,
/// batch and intra-op threads. scripts/bench/scaling.sh plots the result (docs/images/scaling.svg).
/// </summary>
public sealed class ScalingBenchmark : IBenchmark
{
    /// <summary>
    /// Work (batch × pixels) above which a point is timed once without a warm-up, to keep the whole run
    /// near 5 minutes: a warm-up's gain (oneDNN primitives, first page faults) is small next to a multi-second call.
    /// </summary>
    private const long OneRepPixels = 2L * 513 * 513;

    public string Name => "scaling";
    public string Description => "train step and inference time against crop, batch and threads (crops=257,321,513 batches=1,2,4,8 threads=1,2 " +
        "backbone=mobilenet os=16 reps=2 flush_denormal=true max_train_pixels=0: train points with more batch×pixels are skipped, 0 = none)";

    public JsonObject Run(IReadOnlyDictionary<string, string> args, ILogger log)
    {
        int[] Ints(string key, string fallback) => args.GetValueOrDefault(key, fallback).Split(',')
            .Select(v => int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n > 0 ? n
                : throw new UserException($"bench scaling: {key} takes positive whole numbers, got '{v}'")).ToArray();
        var crops = Ints("crops", "257,321,513");
        var batches = Ints("batches", "1,2,4,8");
        var threads = Ints("threads", "1,2");
        int reps = Ints("reps", "2")[0];
        long maxTrain = long.Parse(args.GetValueOrDefault("max_train_pixels", "0"), CultureInfo.InvariantCulture);
        var backbone = args.GetValueOrDefault("backbone", "mobilenet");
        int os = Ints("os", "16")[0];

        // Random weights push activations into denormal floats, many times slower than a trained model's
        // (bench infer flushes them too).
        bool flushed = args.GetValueOrDefault("flush_denormal", "true") != "false" && DeepLabTorch.Runtime.FlushDenormal.Set(true);
        manual_seed(1);
        using var trainModel = ModelFactory.Create(new ModelConfig(backbone, os, 21));
        using var inferModel = ModelFactory.Create(new ModelConfig(backbone, os, 21));
        ModelLoader.PrepareForInference(inferModel, CPU);
        using var opt = DeepLabTorch.Training.SgdFactory.Create(trainModel, 0.007, momentum: 0.9, weightDecay: 5e-4);
        trainModel.train();

        var points = new JsonArray();
        foreach (int t in threads)
        {
            set_num_threads(t);
            KernelGuard.Ensure(t, log);
            foreach (int crop in crops)
                foreach (int batch in batches)
                {
                    long work = (long)batch * crop * crop;
                    bool big = work > OneRepPixels;
                    int n = big ? 1 : reps;
                    var infer = Time(n, !big, () => Infer(inferModel, batch, crop));
                    bool train = maxTrain <= 0 || work <= maxTrain;
                    var step = train ? Time(n, !big, () => TrainStep(trainModel, opt, batch, crop)) : null;
                    points.Add(new JsonObject
                    {
                        ["threads"] = t, ["crop"] = crop, ["batch"] = batch, ["pixels_x_batch"] = work, ["reps"] = n, ["warmed_up"] = !big,
                        ["infer_ms_median"] = Math.Round(Percentiles.Of(infer, 50), 1), ["infer_ms_min"] = Math.Round(infer.Min(), 1),
                        ["train_step_ms_median"] = step is null ? null : Math.Round(Percentiles.Of(step, 50), 1),
                        ["train_step_ms_min"] = step is null ? null : Math.Round(step.Min(), 1),
                    });
                    if (step is null)
                        log.LogInformation("scaling: threads {Threads} crop {Crop} batch {Batch}: infer {InferMs:F0} ms, train skipped", t, crop, batch, Percentiles.Of(infer, 50));
                    else
                        log.LogInformation("scaling: threads {Threads} crop {Crop} batch {Batch}: infer {InferMs:F0} ms, train {TrainMs:F0} ms", t, crop, batch, Percentiles.Of(infer, 50), Percentiles.Of(step, 50));
                }
        }
        return new JsonObject
        {
            ["backbone"] = backbone, ["output_stride"] = os, ["precision"] = "float32",
            ["inference"] = "eval, inference mode, channels-last weights and BatchNorm folded (as predict), random input",
            ["train_step"] = "NCHW, forward + cross-entropy + backward + SGD momentum step; at batch 1 with BatchNorm frozen as --freeze-bn does (train-mode BatchNorm needs 2+ images)",
            ["warmup"] = $"one untimed call per shape up to {OneRepPixels} batch x pixels, then {reps} timed; above: one timed call, no warm-up", ["flush_denormal"] = flushed, ["libtorch"] = __version__,
            ["points"] = points,
        };
    }

    /// <summary>An untimed warm-up if asked (oneDNN primitives are made per shape), then n timed calls.</summary>
    private static double[] Time(int n, bool warmUp, Action call)
    {
        if (warmUp) call();
        var times = new double[n];
        for (int i = 0; i < n; i++)
        {
            var sw = Stopwatch.StartNew();
            call();
            times[i] = sw.Elapsed.TotalMilliseconds;
        }
        return times;
    }

    private static void Infer(DeepLabV3Plus model, int batch, int crop)
    {
        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        model.forward(randn(batch, 3, crop, crop));
    }

    private static void TrainStep(DeepLabV3Plus model, optim.Optimizer opt, int batch, int crop)
    {
        using var scope = NewDisposeScope();
        // At batch 1 the ASPP's pooled branch has one value per channel, which BatchNorm refuses in train
        // mode, so batch-1 steps run with every BatchNorm frozen (--freeze-bn), as training at batch 1 must.
        model.FreezeBatchNorm = batch == 1;
        var x = randn(batch, 3, crop, crop);
        var target = randint(0, 21, new long[] { batch, crop, crop });
        var loss = F.cross_entropy(model.forward(x), target, ignore_index: 255);
        opt.zero_grad();
        loss.backward();
        opt.step();
    }
}
