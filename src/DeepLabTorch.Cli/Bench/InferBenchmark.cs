using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using DeepLabTorch.Inference;
using DeepLabTorch.Models;
using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Cli.Bench;

/// <summary>
/// Inference latency (batch 1) and throughput (batch N) of DeepLabV3+ in eval mode under inference
/// mode, through the Predictor as predict uses it; scripts/bench/infer.sh runs the PyTorch twin.
/// </summary>
public sealed class InferBenchmark : IBenchmark
{
    public string Name => "infer";
    public string Description => "inference latency at batch 1 and throughput at batch N (size=513 batch=8 iters_b1=10 iters_batch=3 backbone=mobilenet os=16 device=cpu flush_denormal=true channels_last=true precision=float32|bf16 fold_bn=true|false, default true as predict)";

    public JsonObject Run(IReadOnlyDictionary<string, string> args)
    {
        int Int(string key, int fallback) => args.TryGetValue(key, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
        int size = Int("size", 513), batch = Int("batch", 8), iters1 = Int("iters_b1", 10), itersB = Int("iters_batch", 3), os = Int("os", 16);
        var backbone = args.TryGetValue("backbone", out var b) ? b : "mobilenet";
        var device = args.TryGetValue("device", out var d) ? torch.device(d) : CPU;
        if (size < 32 || batch < 1 || iters1 < 1 || itersB < 1) throw new UserException("bench infer: size >= 32, batch, iters_b1 and iters_batch >= 1");
        // Random weights in eval mode shrink activations into denormal floats, which are many times slower
        // than a trained model's; both sides flush them to zero (the Python script does the same).
        bool flush = !args.TryGetValue("flush_denormal", out var fd) || fd != "false";
        bool flushed = flush && FlushDenormal.Set(true);

        manual_seed(0);
        using var model = ModelFactory.Create(new ModelConfig(backbone, os, 21));
        // Prepared as predict, matte and eval prepare theirs: channels-last weights on the CPU
        // (the convolutions then run in oneDNN's NHWC layout; inputs stay as they come).
        bool channelsLast = device.type == DeviceType.CPU && (!args.TryGetValue("channels_last", out var cl) || cl != "false");
        var precision = PrecisionNames.Parse(args.TryGetValue("precision", out var pr) ? pr : "float32");
        bool foldArg = !args.TryGetValue("fold_bn", out var fb) || fb != "false";
        ModelLoader.PrepareForInference(model, device, channelsLast, precision, foldArg);
        bool foldBn = !BatchNormFolding.HasActiveBatchNorm(model);
        var predictor = new Predictor(model, new PredictOptions(), device);
        using var x1 = randn(1, 3, size, size);
        using var xb = randn(batch, 3, size, size);

        // Warm-up once per shape (oneDNN primitives, allocator), then time each call end to end,
        // logits back on the CPU as predict needs them.
        using (predictor.Logits(x1)) { }
        var t1 = Time(predictor, x1, iters1, device);
        using (predictor.Logits(xb)) { }
        var tb = Time(predictor, xb, itersB, device);
        double median1 = Median(t1), medianB = Median(tb);
        return new JsonObject
        {
            ["size"] = size,
            ["batch"] = batch,
            ["threads"] = get_num_threads(),
            ["device"] = device.ToString(),
            ["backbone"] = backbone,
            ["output_stride"] = os,
            ["parameters"] = ModelFactory.ParameterCount(model),
            ["precision"] = precision == Precision.BFloat16 ? "bf16" : "float32",
            ["b1_latency_ms_median"] = Math.Round(median1, 2),
            ["b1_latency_ms_min"] = Math.Round(t1.Min(), 2),
            ["batch_ms_median"] = Math.Round(medianB, 2),
            ["batch_images_per_s"] = Math.Round(batch * 1000 / medianB, 3),
            ["iters_b1"] = iters1,
            ["iters_batch"] = itersB,
            ["flush_denormal"] = flushed,
            ["channels_last"] = channelsLast,
            ["fold_bn"] = foldBn,
            ["libtorch"] = __version__,
        };
    }

    private static double[] Time(Predictor predictor, Tensor x, int iters, Device device)
    {
        var times = new double[iters];
        for (int i = 0; i < iters; i++)
        {
            var sw = Stopwatch.StartNew();
            using (predictor.Logits(x)) { }
            if (device.type == DeviceType.CUDA) cuda.synchronize(device);
            times[i] = sw.Elapsed.TotalMilliseconds;
        }
        return times;
    }

    private static double Median(double[] v)
    {
        var s = v.OrderBy(x => x).ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}
