// The C# side of scripts/bench/model.sh: `dotnet run scripts/bench/model_bench.cs -- key=value ...`
// (backbone, os, threads, forward_runs, train_steps, forward_size, train_batch, train_size, warmup,
// channels_last). Prints one JSON object.
#:project ../../src/DeepLabTorch/DeepLabTorch.csproj
#:property PublishAot=false
using System.Globalization;
using DeepLabTorch.Models;

var kv = args.Select(a => a.Split('=', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : "true");
int I(string k, int d) => kv.TryGetValue(k, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : d;
var o = new ModelBenchmarkOptions
{
    Backbone = kv.GetValueOrDefault("backbone", "mobilenet"),
    OutputStride = I("os", 16),
    Threads = I("threads", 2),
    ForwardRuns = I("forward_runs", 5),
    TrainSteps = I("train_steps", 3),
    ForwardSize = I("forward_size", 513),
    TrainBatch = I("train_batch", 4),
    TrainSize = I("train_size", 321),
    Warmup = I("warmup", 1),
    ChannelsLast = kv.GetValueOrDefault("channels_last", "false") == "true",
};
Console.WriteLine(ModelBenchmark.Run(o).ToJsonString());
