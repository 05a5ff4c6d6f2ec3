using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using DeepLabTorch.Inference;
using DeepLabTorch.Models;
using DeepLabTorch.Runtime;
using DeepLabTorch.Extensions;
using Microsoft.Extensions.Logging;
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
    public string Description => "inference latency at batch 1 and throughput at batch N (size=513 batch=8 iters_b1=10 iters_batch=3 backbone=mobilenet os=16 device=cpu flush_denormal=true channels_last=true precision=float32|bf16 fold_bn=true|false, default true as predict; " +
        "engine=torch|onnx: onnx exports the model and runs it in ONNX Runtime, tuned by ort_threads=N ort_opt=basic|extended|all ort_mode=sequential|parallel " +
        "ort_mem_pattern=true|false ort_spinning=true|false; weights=PATH: a trained model instead of random weights; onnx=PATH: run this .onnx file (e.g. an int8 export) in ONNX Runtime)";

    public JsonObject Run(IReadOnlyDictionary<string, string> args, ILogger log)
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
        using var loaded = args.TryGetValue("weights", out var weightsPath) ? ModelLoader.Load(weightsPath, null, log) : null;
        using var random = loaded is null ? ModelFactory.Build(new ModelConfig(backbone, os, 21)) : null;
        var model = loaded?.Model ?? random!;
        if (loaded is not null) backbone = model.Config.Backbone;
        // Prepared as predict, matte and eval prepare theirs: channels-last weights on the CPU
        // (the convolutions then run in oneDNN's NHWC layout; inputs stay as they come).
        bool channelsLast = device.type == DeviceType.CPU && (!args.TryGetValue("channels_last", out var cl) || cl != "false");
        var precision = PrecisionNames.Parse(args.TryGetValue("precision", out var pr) ? pr : "float32");
        bool foldArg = !args.TryGetValue("fold_bn", out var fb) || fb != "false";
        var engineName = args.GetValueOrDefault("engine", "torch");
        if (engineName is not ("torch" or "onnx")) throw new UserException($"bench infer: engine must be torch or onnx, got '{engineName}'");
        OnnxLogitsEngine? onnx = null;
        string? onnxPath = null;
        JsonObject? ortSettings = null;
        if (args.TryGetValue("onnx", out var givenOnnx))
        {
            // A file deeplab export wrote (float32, fp16 or int8), run as predict runs it.
            if (precision != Precision.Float32) throw new UserException("bench infer: onnx=PATH runs the file as it is; leave precision out");
            engineName = "onnx";
            ortSettings = new JsonObject();
            onnx = new OnnxLogitsEngine(givenOnnx, get_num_threads(), o => ortSettings = TuneOrt(o, args));
        }
        else if (engineName == "onnx")
        {
            // predict --engine onnx runs a file that deeplab export wrote: the same export (BatchNorm folded by the exporter), float32.
            if (precision != Precision.Float32) throw new UserException("bench infer: engine=onnx runs float32 only");
            onnxPath = Path.Combine(Path.GetTempPath(), $"deeplab-bench-{Environment.ProcessId}.onnx");
            if (model is not DeepLabV3Plus deeplab) throw new UserException($"bench infer: engine=onnx needs a DeepLabV3+ backbone, not {backbone}");
            deeplab.eval();
            DeepLabTorch.Export.DeepLabOnnxExporter.Export(deeplab, onnxPath);
            ortSettings = new JsonObject();
            onnx = new OnnxLogitsEngine(onnxPath, get_num_threads(), o => ortSettings = TuneOrt(o, args));
        }
        else
        {
            ModelLoader.PrepareForInference(model, device, channelsLast, precision, foldArg);
        }
        bool foldBn = onnx is not null || !BatchNormFolding.HasActiveBatchNorm(model);
        using var onnxEngine = onnx;
        var predictor = onnx is not null ? new Predictor(onnx, new PredictOptions()) : new Predictor(model, new PredictOptions(), device);
        using var x1 = randn(1, 3, size, size);
        using var xb = randn(batch, 3, size, size);

        // Warm-up once per shape (oneDNN primitives, allocator), then time each call end to end,
        // logits back on the CPU as predict needs them.
        using (predictor.Logits(x1)) { }
        var faults0 = NativeHeap.MinorPageFaults();
        var t1 = Time(predictor, x1, iters1, device);
        var faults1 = NativeHeap.MinorPageFaults();
        using (predictor.Logits(xb)) { }
        var faults2 = NativeHeap.MinorPageFaults();
        var tb = Time(predictor, xb, itersB, device);
        var faults3 = NativeHeap.MinorPageFaults();
        double median1 = Percentiles.Of(t1, 50), medianB = Percentiles.Of(tb, 50);
        if (onnxPath is not null) File.Delete(onnxPath);
        return new JsonObject
        {
            ["weights"] = weightsPath,
            ["onnx_file"] = givenOnnx,
            ["engine"] = engineName == "onnx" ? "onnxruntime " + OrtVersion() : "torchsharp",
            ["onnxruntime_settings"] = ortSettings,
            ["size"] = size,
            ["batch"] = batch,
            ["threads"] = get_num_threads(),
            ["heap"] = NativeHeap.Status,
            // Pages the kernel had to map (and zero) per call: what the heap setting saves.
            ["b1_page_faults_per_call"] = faults1 - faults0 is long f1 ? f1 / iters1 : null,
            ["batch_page_faults_per_call"] = faults3 - faults2 is long f2 ? f2 / itersB : null,
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

    /// <summary>SessionOptions from the ort_* settings; returns what was set (defaults: predict's, all optimisations, ORT's own threading).</summary>
    private static JsonObject TuneOrt(Microsoft.ML.OnnxRuntime.SessionOptions o, IReadOnlyDictionary<string, string> args)
    {
        var set = new JsonObject();
        if (args.TryGetValue("ort_threads", out var th))
            o.IntraOpNumThreads = int.Parse(th, CultureInfo.InvariantCulture);
        if (args.TryGetValue("ort_opt", out var opt))
            o.GraphOptimizationLevel = opt switch
            {
                "none" => Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_DISABLE_ALL,
                "basic" => Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                "extended" => Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                "all" => Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_ENABLE_ALL,
                _ => throw new UserException($"bench infer: ort_opt must be none, basic, extended or all, got '{opt}'"),
            };
        if (args.TryGetValue("ort_mode", out var mode))
            o.ExecutionMode = mode == "parallel" ? Microsoft.ML.OnnxRuntime.ExecutionMode.ORT_PARALLEL : Microsoft.ML.OnnxRuntime.ExecutionMode.ORT_SEQUENTIAL;
        if (args.TryGetValue("ort_mem_pattern", out var mp)) o.EnableMemoryPattern = mp != "false";
        // Whether idle intra-op threads spin before sleeping (ORT's default: they spin).
        if (args.TryGetValue("ort_spinning", out var sp)) o.AddSessionConfigEntry("session.intra_op.allow_spinning", sp == "false" ? "0" : "1");
        set["intra_op_threads"] = o.IntraOpNumThreads;
        set["graph_optimization"] = o.GraphOptimizationLevel.ToString();
        set["execution_mode"] = o.ExecutionMode.ToString();
        set["memory_pattern"] = o.EnableMemoryPattern;
        set["spinning"] = args.GetValueOrDefault("ort_spinning", "default");
        return set;
    }

    private static string OrtVersion() =>
        typeof(Microsoft.ML.OnnxRuntime.InferenceSession).Assembly.GetName().Version?.ToString() ?? "?";

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
}
