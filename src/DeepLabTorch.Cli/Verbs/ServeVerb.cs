using System.Globalization;
using System.Net;
using CommandLine;
using DeepLabTorch.Cli.Serving;
using DeepLabTorch.Inference;
using DeepLabTorch.Models;
using DeepLabTorch.Runtime;
using Microsoft.Extensions.Logging;

namespace DeepLabTorch.Cli.Verbs;

[Verb("serve", HelpText = "Serve a model over HTTP (ASP.NET Core): POST /v1/segment and /v1/matte, GET /v1/model, /healthz, /metrics, " +
    "/openapi.json, and a web page at / for background replacement. Concurrent requests of one image size share a forward pass.")]
public sealed class ServeVerb : ModelRunOptions
{
    [Option("weights", Required = true, HelpText = "Any model predict takes: our checkpoint, a safetensors state_dict, a reference .pth, or an exported .onnx.")]
    public string Weights { get; set; } = "";
    [Option("engine", HelpText = "torch | onnx (default: onnx for a .onnx file, else torch).")]
    public string? EngineName { get; set; }
    [Option("host", Default = "127.0.0.1", HelpText = "Address to listen on. 127.0.0.1 keeps the server on this machine; 0.0.0.0 (or ::) opens it to the network.")]
    public string Host { get; set; } = "127.0.0.1";
    [Option("port", Default = 8080, HelpText = "TCP port; 0 picks a free one (the address is printed).")]
    public int Port { get; set; } = 8080;
    [Option("max-batch", Default = 8, HelpText = "Most images in one forward pass.")]
    public int MaxBatch { get; set; } = 8;
    [Option("max-wait-ms", Default = 10, HelpText = "How long the first request of a batch waits for others of its size, in milliseconds.")]
    public int MaxWaitMs { get; set; } = 10;
    [Option("max-upload-mb", Default = 20.0, HelpText = "Largest request body in MiB; larger uploads get 413 while they stream.")]
    public double MaxUploadMb { get; set; } = 20;
    [Option("max-pixels", Default = 40_000_000L, HelpText = "Largest image in pixels (width x height), checked on the header before decoding; larger gets 413.")]
    public long MaxPixels { get; set; } = 40_000_000;
    [Option("queue", Default = 64, HelpText = "Requests that may wait for the model; when full, 503 with Retry-After.")]
    public int Queue { get; set; } = 64;
    [Option("timeout-s", Default = 30.0, HelpText = "Seconds a request may take from arrival to answer; past it, 504.")]
    public double TimeoutSeconds { get; set; } = 30;
    [Option("resize", HelpText = "Resize so the short side is this many pixels before the model; outputs keep the original size.")]
    public int? Resize { get; set; }

    public override int Run()
    {
        var settings = Validate();
        var log = Loggers.CreateLogger(LogCategories.Serving);
        using var model = UseOnnx(EngineName, Weights) ? OpenOnnx(Weights) : OpenTorch(Weights);
        var predictor = new Predictor(model.Engine, new PredictOptions { ResizeShort = Resize }.Validate());
        var served = new ServedModel(predictor, model.ClassNames, ModelLoader.PaletteFor(model.ClassNames), model.Backbone, model.OutputStride,
            model.Precision, model.EngineName, model.Description);
        return RunServer(served, settings, log);
    }

    /// <summary>Kestrel on the thread pool; the model on this (the main) thread, as Batcher explains.</summary>
    private int RunServer(ServedModel served, ServeSettings settings, ILogger log)
    {
        var server = new SegmentServer(served, settings, Loggers);
        try
        {
            try
            {
                server.StartAsync(CancellationToken.None).GetAwaiter().GetResult();
            }
            catch (IOException e)
            {
                throw new UserException($"cannot listen on {settings.Host}:{settings.Port}: {e.Message}");
            }
            foreach (var address in server.Addresses) Results.WriteLine($"serving {served.Description} on {address}");
            Results.Flush();
            log.LogInformation("max batch {MaxBatch}, wait {Wait} ms, queue {Queue}, timeout {Timeout} s, uploads up to {Mb} MiB and {Pixels} pixels; SIGTERM or Ctrl+C stops",
                settings.MaxBatch, settings.MaxWaitMs, settings.Queue, settings.TimeoutSeconds, MaxUploadMb, settings.MaxPixels);
            server.RunUntilShutdown();
            log.LogInformation("stopped: requests in flight were answered");
            return 0;
        }
        finally
        {
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private ServeSettings Validate()
    {
        if (Port is < 0 or > 65535) throw new UserException($"--port must be 0-65535, got {Port}");
        if (!IPAddress.TryParse(Host, out _) && Host != "localhost")
            throw new UserException($"--host must be an IP address (127.0.0.1, 0.0.0.0, ::) or localhost, got '{Host}'");
        if (MaxBatch is < 1 or > 256) throw new UserException($"--max-batch must be 1-256, got {MaxBatch}");
        if (MaxWaitMs is < 0 or > 10_000) throw new UserException($"--max-wait-ms must be 0-10000, got {MaxWaitMs}");
        if (!(MaxUploadMb > 0 && MaxUploadMb <= 4096)) throw new UserException($"--max-upload-mb must be in (0, 4096], got {MaxUploadMb.ToString(CultureInfo.InvariantCulture)}");
        if (MaxPixels < 1) throw new UserException($"--max-pixels must be positive, got {MaxPixels}");
        if (Queue is < 1 or > 100_000) throw new UserException($"--queue must be 1-100000, got {Queue}");
        if (!(TimeoutSeconds > 0 && TimeoutSeconds <= 3600)) throw new UserException($"--timeout-s must be in (0, 3600], got {TimeoutSeconds.ToString(CultureInfo.InvariantCulture)}");
        return new ServeSettings
        {
            Host = Host, Port = Port, MaxBatch = MaxBatch, MaxWaitMs = MaxWaitMs, MaxUploadBytes = (long)(MaxUploadMb * 1024 * 1024),
            MaxPixels = MaxPixels, Queue = Queue, TimeoutSeconds = TimeoutSeconds,
        };
    }
}
