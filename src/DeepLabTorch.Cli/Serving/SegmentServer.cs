using System.Diagnostics;
using System.Text.Json;
using DeepLabTorch.Data;
using DeepLabTorch.Inference;
using DeepLabTorch.Models;
using DeepLabTorch.Extensions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Cli.Serving;

/// <summary>What `deeplab serve` was asked for.</summary>
internal sealed record ServeSettings
{
    public string Host { get; init; } = "127.0.0.1";
    public int Port { get; init; } = 8080;
    public int MaxBatch { get; init; } = 8;
    public int MaxWaitMs { get; init; } = 10;
    public long MaxUploadBytes { get; init; } = 20L << 20;
    public long MaxPixels { get; init; } = 40_000_000;
    public int Queue { get; init; } = 64;
    public double TimeoutSeconds { get; init; } = 30;
}

/// <summary>The model as the endpoints see it: its engine's predictor, classes and description.</summary>
internal sealed record ServedModel(Predictor Predictor, IReadOnlyList<string> ClassNames, byte[] Palette, string? Backbone, int? OutputStride,
    string Precision, string Engine, string Description);

/// <summary>
/// The HTTP service on ASP.NET Core minimal APIs: segmentation and background replacement through one
/// micro-batching queue, the model's description, health, Prometheus metrics, the OpenAPI document and the page.
/// </summary>
internal sealed class SegmentServer : IAsyncDisposable
{
    private readonly ServedModel _model;
    private readonly ServeSettings _settings;
    private readonly ServerMetrics _metrics = new();
    private readonly Batcher _batcher;
    private readonly ILogger _log;
    private readonly WebApplication _app;
    private readonly IReadOnlyList<int>? _personClasses;
    private readonly string? _noPerson;

    public SegmentServer(ServedModel model, ServeSettings settings, ILoggerFactory loggers)
    {
        _model = model;
        _settings = settings;
        _log = loggers.CreateLogger(Runtime.LogCategories.Serving);
        try { _personClasses = new MatteOptions().ResolvePersonClasses(model.ClassNames.Count); }
        catch (UserException e) { _noPerson = e.Message; }
        _batcher = new Batcher(model.Predictor, settings.MaxBatch, TimeSpan.FromMilliseconds(settings.MaxWaitMs), settings.Queue, _metrics, _log);
        _app = Build(loggers);
    }

    /// <summary>The addresses Kestrel listens on (known after <see cref="StartAsync"/>; port 0 picks a free one).</summary>
    public IReadOnlyList<string> Addresses => _app.Urls.ToList();

    public Task StartAsync(CancellationToken ct) => _app.StartAsync(ct);

    /// <summary>
    /// Runs the model on the calling thread (see <see cref="Batcher"/>) until the host stops (SIGTERM or Ctrl+C): new
    /// connections are refused, requests in flight finish, then the queue closes and this returns.
    /// </summary>
    public void RunUntilShutdown()
    {
        var shutdown = _app.WaitForShutdownAsync();
        var closing = shutdown.ContinueWith(_ => _batcher.Complete(), TaskScheduler.Default);
        _batcher.Run();
        closing.GetAwaiter().GetResult();
        shutdown.GetAwaiter().GetResult();
    }

    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync();
        _batcher.Dispose();
    }

    private WebApplication Build(ILoggerFactory loggers)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = "deeplab", ContentRootPath = AppContext.BaseDirectory });
        builder.Services.AddSingleton<ILoggerFactory>(new QuietFrameworkLoggers(loggers));
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(_settings.TimeoutSeconds + 5));
        builder.Services.Configure<KestrelServerOptions>(o =>
        {
            o.Limits.MaxRequestBodySize = _settings.MaxUploadBytes;
            o.AddServerHeader = false;
        });
        builder.Services.Configure<FormOptions>(o =>
        {
            o.MultipartBodyLengthLimit = _settings.MaxUploadBytes;
            o.ValueLengthLimit = 4096;
        });
        builder.Services.AddOpenApi(o => o.AddDocumentTransformer((doc, _, _) =>
        {
            doc.Info = new Microsoft.OpenApi.OpenApiInfo { Title = "DeepLabTorch", Version = "v1", Description = "Semantic segmentation and background replacement." };
            return Task.CompletedTask;
        }).AddOperationTransformer((operation, context, _) =>
        {
            // The handlers read the body themselves (any content type); the document says what they take.
            if (context.Description.HttpMethod == "POST")
            {
                var content = new Dictionary<string, Microsoft.OpenApi.OpenApiMediaType>();
                foreach (var type in new[] { "image/jpeg", "image/png", "image/webp", "image/bmp", "multipart/form-data" }) content[type] = new Microsoft.OpenApi.OpenApiMediaType();
                operation.RequestBody = new Microsoft.OpenApi.OpenApiRequestBody
                {
                    Required = true, Content = content,
                    Description = "The image as the raw body, or as the multipart file field 'image' (matte: plus an optional 'background' image).",
                };
            }
            return Task.CompletedTask;
        }));
        builder.WebHost.UseUrls($"http://{(_settings.Host.Contains(':') ? $"[{_settings.Host}]" : _settings.Host)}:{_settings.Port}");
        var app = builder.Build();
        app.Use(Measure);
        Map(app);
        return app;
    }

    /// <summary>Times every request, counts it by route and status, and logs one line at debug level.</summary>
    private async Task Measure(HttpContext context, Func<Task> next)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            await next();
        }
        finally
        {
            var route = context.GetEndpoint() is RouteEndpoint e ? "/" + e.RoutePattern.RawText?.TrimStart('/') : "other";
            _metrics.Request(route, context.Response.StatusCode, clock.Elapsed.TotalSeconds);
            _log.LogDebug("{Method} {Path}{Query} {Status} {Ms:F1} ms", context.Request.Method, context.Request.Path.Value, context.Request.QueryString.Value,
                context.Response.StatusCode, clock.Elapsed.TotalMilliseconds);
        }
    }

    private void Map(WebApplication app)
    {
        app.MapGet("/", () => Results.Content(WebPage.Html, "text/html; charset=utf-8")).ExcludeFromDescription();
        app.MapGet("/healthz", () => Results.Json(new { status = "ok" })).WithSummary("Liveness: 200 while the server runs.");
        app.MapGet("/metrics", () => Results.Text(_metrics.Render(_batcher.Depth), "text/plain; version=0.0.4; charset=utf-8"))
            .WithSummary("Prometheus metrics: requests, latency, batch sizes, queue depth, images per second.");
        app.MapGet("/v1/model", () => Results.Json(new
        {
            backbone = _model.Backbone,
            output_stride = _model.OutputStride,
            classes = _model.ClassNames,
            precision = _model.Precision,
            engine = _model.Engine,
            description = _model.Description,
            person_classes = _personClasses,
            max_batch = _settings.MaxBatch,
            max_pixels = _settings.MaxPixels,
            max_upload_bytes = _settings.MaxUploadBytes,
        })).WithSummary("The served model: backbone, classes, output stride, precision and engine.");
        app.MapPost("/v1/segment", (Func<HttpContext, Task>)(c => Guard(c, Segment)))
            .WithSummary("Segments an image (raw body or multipart field 'image'): a class-index palette PNG, one class's probability PNG (?prob=CLASS), or JSON (Accept: application/json).")
            .Produces(200, contentType: "image/png").Produces(200, contentType: "application/json")
            .Produces(400).Produces(413).Produces(415).Produces(503).Produces(504);
        app.MapPost("/v1/matte", (Func<HttpContext, Task>)(c => Guard(c, Matte)))
            .WithSummary("Replaces the background behind people: multipart 'image' plus an optional 'background' image, or ?background=COLOUR|blur; ?blend=alpha|poisson; ?alpha=1 returns the matte. PNG, or JPEG with Accept: image/jpeg.")
            .Produces(200, contentType: "image/png").Produces(200, contentType: "image/jpeg")
            .Produces(400).Produces(413).Produces(415).Produces(503).Produces(504);
        app.MapOpenApi("/openapi.json");
    }

    /// <summary>Runs a handler and turns every failure into a JSON error with its status; the server keeps serving.</summary>
    private async Task Guard(HttpContext context, Func<HttpContext, Task> handler)
    {
        try
        {
            await handler(context);
        }
        catch (Exception e) when (!context.Response.HasStarted && e is HttpError or QueueFullException or TimeoutException or UserException or DataException)
        {
            var (status, message, retry) = e switch
            {
                HttpError h => (h.Status, h.Message, h.RetryAfter),
                QueueFullException => (503, e.Message, (TimeSpan?)TimeSpan.FromSeconds(1)),
                TimeoutException => (504, $"no answer within {_settings.TimeoutSeconds:0.###} s (--timeout-s)", null),
                _ => (400, e.Message, null),
            };
            if (retry is TimeSpan r) context.Response.Headers.RetryAfter = ((int)Math.Ceiling(r.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            context.Response.StatusCode = status;
            await context.Response.WriteAsJsonAsync(new { error = message, status });
        }
    }

    private TimeSpan Timeout => TimeSpan.FromSeconds(_settings.TimeoutSeconds);

    private async Task<Upload> ReadImage(HttpContext c, string field = "image")
    {
        var bytes = await Uploads.ReadBytesAsync(c.Request, field, required: true, c.RequestAborted);
        return Uploads.Decode(bytes!, field == "image" ? "image" : field + " image", _settings.MaxPixels);
    }

    private async Task Segment(HttpContext c)
    {
        int? probClass = c.Request.Query["prob"].FirstOrDefault() is { } spec
            ? ResolveClass(spec) : null;
        bool json = AcceptsJson(c.Request);
        var image = await ReadImage(c);
        var (result, queueMs, totalMs) = await _batcher.RunAsync(image.Rgb, image.Height, image.Width, (logits, _) =>
        {
            var one = logits.select(0, 0);
            return probClass is int k ? SegmentationOutputs.Probability(one, k) : SegmentationOutputs.ClassIndices(one);
        }, Timeout, c.RequestAborted);
        if (json && probClass is null)
        {
            var counts = new long[_model.ClassNames.Count];
            foreach (var v in result) counts[v]++;
            await c.Response.WriteAsJsonAsync(new
            {
                width = image.Width,
                height = image.Height,
                classes = counts.Select((n, i) => (n, i)).Where(p => p.n > 0)
                    .Select(p => new { index = p.i, name = _model.ClassNames[p.i], pixels = p.n }),
                timings = new { queue_ms = Math.Round(queueMs, 2), total_ms = Math.Round(totalMs, 2) },
            });
            return;
        }
        if (json) throw new HttpError(406, "?prob returns a PNG: ask with Accept: image/png (or any)");
        var png = probClass is null ? ImageCodec.EncodePalettePng(result, image.Height, image.Width, _model.Palette)
            : Data.Png.PngWriter.EncodeGray(result, image.Height, image.Width);
        await Write(c, png, "image/png", totalMs);
    }

    private async Task Matte(HttpContext c)
    {
        if (_noPerson is not null) throw new HttpError(400, $"this model cannot replace backgrounds: {_noPerson}");
        var blend = (c.Request.Query["blend"].FirstOrDefault() ?? "alpha").Trim().ToLowerInvariant();
        if (blend is not ("alpha" or "poisson")) throw new HttpError(400, $"blend must be alpha or poisson, got '{blend}'");
        bool alphaOnly = c.Request.Query["alpha"].FirstOrDefault() is "1" or "true";
        var backgroundSpec = c.Request.Query["background"].FirstOrDefault();
        var image = await ReadImage(c);
        Upload? picture = null;
        if (Uploads.IsMultipart(c.Request) && await Uploads.ReadBytesAsync(c.Request, "background", required: false, c.RequestAborted) is { } bg)
            picture = Uploads.Decode(bg, "background image", _settings.MaxPixels);
        var background = ParseBackground(backgroundSpec, picture);
        bool jpeg = c.Request.Headers.Accept.Any(a => a?.Contains("image/jpeg", StringComparison.OrdinalIgnoreCase) == true);
        bool poisson = blend == "poisson";
        var eps = new MatteOptions().EdgeEps;
        var (rgb, _, totalMs) = await _batcher.RunAsync(image.Rgb, image.Height, image.Width, (logits, image01) =>
        {
            var prob = Matter.PersonProbability(logits, _personClasses!);
            var alpha = Matter.Refine(prob, image01, Matter.AutoRadius(image.Height, image.Width), eps);
            if (alphaOnly) return alpha.mul(HeldScalars.Byte255).round().clamp(HeldScalars.Zero, HeldScalars.Byte255).to(ScalarType.Byte).ToArray<byte>();
            using var renderer = new BackgroundRenderer(background, _ => (picture!.Rgb, picture.Height, picture.Width));
            var bgFrame = renderer.Render(image01);
            return RgbTensors.ToBytes(poisson ? PoissonBlend.Composite(image01, bgFrame, alpha) : Matter.Composite(image01, bgFrame, alpha));
        }, Timeout, c.RequestAborted);
        if (alphaOnly) await Write(c, Data.Png.PngWriter.EncodeGray(rgb, image.Height, image.Width), "image/png", totalMs);
        else if (jpeg) await Write(c, ImageCodec.EncodeJpeg(rgb, image.Height, image.Width), "image/jpeg", totalMs);
        else await Write(c, ImageCodec.EncodePng(rgb, image.Height, image.Width), "image/png", totalMs);
    }

    /// <summary>A colour or blur from the query, or the uploaded picture; never a path on the server.</summary>
    private static Background ParseBackground(string? spec, Upload? picture)
    {
        if (picture is not null)
        {
            if (spec is not null) throw new HttpError(400, "give the background either as ?background= or as an uploaded 'background' file, not both");
            return new Background.Picture("upload");
        }
        if (string.IsNullOrWhiteSpace(spec)) throw new HttpError(400, "no background: add ?background=COLOUR (#RRGGBB or a name), ?background=blur, or a 'background' image field");
        var s = spec.Trim();
        if (!(s.StartsWith('#') || s.StartsWith("blur", StringComparison.OrdinalIgnoreCase) || Background.ColourNames.Contains(s, StringComparer.OrdinalIgnoreCase)))
            throw new HttpError(400, $"unknown background '{spec}': use #RRGGBB, #RGB, one of {string.Join(", ", Background.ColourNames)}, blur or blur:RADIUS, or upload an image");
        try
        {
            return Background.Parse(s) is Background.Picture ? throw new HttpError(400, $"unknown background '{spec}'") : Background.Parse(s);
        }
        catch (UserException e)
        {
            throw new HttpError(400, e.Message);
        }
    }

    private int ResolveClass(string spec)
    {
        try { return ModelLoader.ResolveClass(spec, _model.ClassNames, "prob"); }
        catch (UserException e) { throw new HttpError(400, e.Message); }
    }

    private static bool AcceptsJson(HttpRequest request) =>
        request.Headers.Accept.Any(a => a?.Contains("application/json", StringComparison.OrdinalIgnoreCase) == true);

    private static async Task Write(HttpContext c, byte[] body, string type, double totalMs)
    {
        c.Response.ContentType = type;
        c.Response.Headers["Server-Timing"] = $"total;dur={totalMs.ToString("0.##", System.Globalization.CultureInfo.InvariantCulture)}";
        c.Response.ContentLength = body.Length;
        await c.Response.Body.WriteAsync(body, c.RequestAborted);
    }
}

/// <summary>The CLI's loggers, with ASP.NET Core's own categories held to warnings (no line per request at information).</summary>
internal sealed class QuietFrameworkLoggers(ILoggerFactory inner) : ILoggerFactory
{
    public ILogger CreateLogger(string categoryName) =>
        categoryName.StartsWith("Microsoft.", StringComparison.Ordinal) ? new AtLeast(inner.CreateLogger(categoryName), LogLevel.Warning) : inner.CreateLogger(categoryName);

    public void AddProvider(ILoggerProvider provider) { }
    public void Dispose() { }

    private sealed class AtLeast(ILogger inner, LogLevel minimum) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => inner.BeginScope(state);
        public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum && inner.IsEnabled(logLevel);
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel)) inner.Log(logLevel, eventId, state, exception, formatter);
        }
    }
}
