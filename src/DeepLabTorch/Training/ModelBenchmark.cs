using System.Diagnostics;
using System.Text.Json.Nodes;
using DeepLabTorch.Extensions;
using DeepLabTorch.Models;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DeepLabTorch.Training;

/// <summary>Settings of the model benchmark (defaults: the protocol).</summary>
internal sealed record ModelBenchmarkOptions
{
    public string Backbone { get; init; } = "mobilenet";
    public int OutputStride { get; init; } = 16;
    public int NumClasses { get; init; } = 21;
    public int Threads { get; init; } = 2;
    public int ForwardSize { get; init; } = 513;
    public int ForwardBatch { get; init; } = 1;
    public int ForwardRuns { get; init; } = 5;
    public int TrainBatch { get; init; } = 4;
    public int TrainSize { get; init; } = 321;
    public int TrainSteps { get; init; } = 3;
    public int Warmup { get; init; } = 1;
    /// <summary>Store weights and inputs channels-last (NHWC).</summary>
    public bool ChannelsLast { get; init; }
    /// <summary>bf16: mixed precision as <c>train --precision bf16</c> runs it (float32 weights, bfloat16 input and convolutions, float32 loss), forward included.</summary>
    public Precision Precision { get; init; } = Precision.Float32;
    /// <summary>Clear gradients by setting them to none (Module.zero_grad) instead of zeroing them (Optimizer.zero_grad).</summary>
    public bool GradToNone { get; init; }
    /// <summary>Flush denormal floats to zero (random eval-mode weights sink activations into them; the Python side takes the same setting).</summary>
    public bool FlushDenormal { get; init; } = true;
}

/// <summary>
/// Forward latency (eval, 1×3×513², inference mode), train-step time (4×3×321²: forward,
/// cross-entropy, backward, SGD step with the two parameter groups) and the process's peak resident
/// memory; the same protocol as tests/reference/model_bench.py. Used by scripts/bench/model.sh.
/// </summary>
internal static class ModelBenchmark
{
    /// <param name="log">Where the CPU-kernel guard reports a verdict it decides here.</param>
    public static JsonObject Run(ModelBenchmarkOptions o, ILogger? log = null)
    {
        // Before set_num_threads: libtorch's pool threads, started from this thread, inherit its flush mode.
        var flushed = o.FlushDenormal && DeepLabTorch.Runtime.FlushDenormal.Set(true);
        set_num_threads(o.Threads);
        Runtime.KernelGuard.Ensure(o.Threads, log);
        manual_seed(1);
        using var model = ModelFactory.Build(new ModelConfig(o.Backbone, o.OutputStride, o.NumClasses));
        var mp = MixedPrecision.For(o.Precision, o.ChannelsLast);
        mp.Prepare(model);

        // Forward latency.
        model.eval();
        var forward = new List<double>();
        using (var x0 = randn(o.ForwardBatch, 3, o.ForwardSize, o.ForwardSize))
        using (var x = mp.Input(x0))
        using (inference_mode())
        {
            for (int i = 0; i < o.Warmup + o.ForwardRuns; i++)
            {
                var sw = Stopwatch.StartNew();
                using (var y = model.forward(x)) { }
                if (i >= o.Warmup) forward.Add(sw.Elapsed.TotalMilliseconds);
            }
        }

        // Train step.
        model.train();
        var steps = new List<double>();
        var phases = new[] { new List<double>(), new List<double>(), new List<double>() }; // forward+loss, backward, optimizer
        var lossReads = new List<double>(); // the trainer's per-step loss.item (its non-finite check), in µs
        using (var opt = SgdFactory.Create(model, 0.007, momentum: 0.9, weightDecay: 5e-4))
        using (var x0 = randn(o.TrainBatch, 3, o.TrainSize, o.TrainSize))
        using (var target = randint(0, o.NumClasses, new long[] { o.TrainBatch, o.TrainSize, o.TrainSize }))
        {
            for (int i = 0; i < o.Warmup + o.TrainSteps; i++)
            {
                var sw = Stopwatch.StartNew();
                double t1, t2, t3;
                using (var scope = NewDisposeScope())
                {
                    // As Trainer.Step: the batch converted inside the step, the loss on float32 logits.
                    Tensor loss;
                    if (model.HasTrainingOutputs)
                    {
                        // The face-parsing recipes' loss on the main and both auxiliary heads (STDC's detail head runs, unused, as on the Python side).
                        var all = model.ForwardAll(mp.Input(x0));
                        loss = F.cross_entropy(MixedPrecision.Logits(all.Main), target, ignore_index: 255);
                        foreach (var aux in all.Auxiliary) loss = loss.Plus(F.cross_entropy(MixedPrecision.Logits(aux), target, ignore_index: 255));
                    }
                    else
                    {
                        var y = model.forward(mp.Input(x0));
                        loss = F.cross_entropy(MixedPrecision.Logits(y), target, ignore_index: 255);
                    }
                    var r0 = sw.Elapsed.TotalMilliseconds;
                    if (!float.IsFinite(loss.item<float>())) throw new InvalidOperationException("non-finite loss");
                    t1 = sw.Elapsed.TotalMilliseconds;
                    if (i >= o.Warmup) lossReads.Add(1000 * (t1 - r0));
                    if (o.GradToNone) model.zero_grad(set_to_none: true);
                    else opt.zero_grad();
                    loss.backward();
                    t2 = sw.Elapsed.TotalMilliseconds;
                    opt.step();
                    t3 = sw.Elapsed.TotalMilliseconds;
                }
                if (i >= o.Warmup)
                {
                    steps.Add(sw.Elapsed.TotalMilliseconds);
                    phases[0].Add(t1);
                    phases[1].Add(t2 - t1);
                    phases[2].Add(t3 - t2);
                }
            }
        }

        return new JsonObject
        {
            ["backbone"] = o.Backbone,
            ["output_stride"] = o.OutputStride,
            ["threads"] = get_num_threads(),
            ["heap"] = DeepLabTorch.Runtime.NativeHeap.Status,
            ["channels_last"] = o.ChannelsLast,
            ["precision"] = o.Precision == Precision.BFloat16 ? "bf16" : "float32",
            ["grad_to_none"] = o.GradToNone,
            ["flush_denormal"] = flushed,
            ["forward_input"] = $"{o.ForwardBatch}x3x{o.ForwardSize}x{o.ForwardSize}",
            ["forward_ms_median"] = Math.Round(Median(forward), 1),
            ["forward_ms_min"] = Math.Round(forward.Min(), 1),
            ["train_input"] = $"{o.TrainBatch}x3x{o.TrainSize}x{o.TrainSize}",
            ["train_step_ms_median"] = Math.Round(Median(steps), 1),
            ["train_step_ms_min"] = Math.Round(steps.Min(), 1),
            ["train_phases_ms_median"] = new JsonObject
            {
                ["forward_loss"] = Math.Round(Median(phases[0]), 1),
                ["backward"] = Math.Round(Median(phases[1]), 1),
                ["optimizer"] = Math.Round(Median(phases[2]), 1),
            },
            ["loss_read_us_median"] = Math.Round(Median(lossReads), 1),
            ["peak_rss_mb"] = Runtime.PlatformNatives.PeakRssMb(),
        };
    }

    private static double Median(List<double> v)
    {
        var s = v.OrderBy(x => x).ToList();
        return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }
}
