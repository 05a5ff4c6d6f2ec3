using DeepLabTorch.Training;
using System.Globalization;
using System.Text.Json.Nodes;
using DeepLabTorch.Models;
using Microsoft.Extensions.Logging;

namespace DeepLabTorch.Cli.Bench;

/// <summary>
/// Forward latency, train-step time and peak RSS of one DeepLabV3+ (ModelBenchmark); run one backbone
/// per process so the RSS figure is that model's. scripts/bench/model.sh runs the PyTorch twin.
/// </summary>
public sealed class ModelBench : IBenchmark
{
    public string Name => "model";
    public string Description => "forward latency, train-step time, peak RSS (backbone=mobilenet os=16 threads=2 forward_runs=5 train_steps=3 " +
        "forward_size=513 train_batch=4 train_size=321 warmup=1 channels_last=false precision=float32|bf16 grad_to_none=false flush_denormal=true)";

    public JsonObject Run(IReadOnlyDictionary<string, string> args, ILogger log)
    {
        var known = new HashSet<string> { "backbone", "os", "threads", "forward_runs", "train_steps", "forward_size", "forward_batch", "train_batch", "train_size", "warmup", "channels_last", "precision", "grad_to_none", "flush_denormal" };
        foreach (var k in args.Keys)
            if (!known.Contains(k)) throw new UserException($"bench model: unknown setting '{k}' (known: {string.Join(", ", known)})");
        int Int(string key, int fallback)
        {
            if (!args.TryGetValue(key, out var v)) return fallback;
            return int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n >= 0 ? n
                : throw new UserException($"bench model: {key} must be a whole number, got '{v}'");
        }
        var backbone = args.GetValueOrDefault("backbone", "mobilenet");
        if (!ModelCatalog.AllNames.Contains(backbone))
            throw new UserException($"bench model: unknown backbone '{backbone}' (known: {string.Join(", ", ModelCatalog.AllNames)})");
        return ModelBenchmark.Run(new ModelBenchmarkOptions
        {
            Backbone = backbone,
            OutputStride = Int("os", 16),
            Threads = Int("threads", 2),
            ForwardRuns = Math.Max(1, Int("forward_runs", 5)),
            TrainSteps = Math.Max(1, Int("train_steps", 3)),
            ForwardSize = Int("forward_size", 513),
            ForwardBatch = Math.Max(1, Int("forward_batch", 1)),
            TrainBatch = Math.Max(2, Int("train_batch", 4)),
            TrainSize = Int("train_size", 321),
            Warmup = Int("warmup", 1),
            ChannelsLast = args.GetValueOrDefault("channels_last", "false") == "true",
            Precision = PrecisionNames.Parse(args.GetValueOrDefault("precision", "float32")),
            GradToNone = args.GetValueOrDefault("grad_to_none", "false") == "true",
            FlushDenormal = args.GetValueOrDefault("flush_denormal", "true") != "false",
        }, log);
    }
}
