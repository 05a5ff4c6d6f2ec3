using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.RegularExpressions;
using DeepLabTorch.Data;
using DeepLabTorch.Tests.Cli;
using DeepLabTorch.Tests.Inference;
using Xunit;

namespace DeepLabTorch.Tests.Serving;

/// <summary>A portrait model (background, person) with fixed weights, a photo, and one server on loopback for the tests that share it.</summary>
public sealed class ServeFixture : IDisposable
{
    public const int Height = 44, Width = 52;

    public ServeFixture()
    {
        Dir = InferenceTestUtil.TempDir("serve");
        Weights = PredictVerbTests.SaveModel(Dir, 2, new[] { "background", "person" }, out var model);
        model.Dispose();
        Photo = Path.Combine(Dir, "photo.png");
        ImageCodec.WritePng(Photo, InferenceTestUtil.TestImage(Height, Width, 7), Height, Width);
        PhotoBytes = File.ReadAllBytes(Photo);
        Server = ServerProcess.Start("--weights", Weights, "--device", "cpu", "--threads", "1", "--max-batch", "4", "--max-wait-ms", "300",
            "--max-upload-mb", "0.25", "--max-pixels", "20000", "--log-level", "debug");
    }

    public string Dir { get; }
    public string Weights { get; }
    public string Photo { get; }
    public byte[] PhotoBytes { get; }
    public ServerProcess Server { get; }

    public void Dispose()
    {
        Server.Dispose();
        try { Directory.Delete(Dir, true); } catch (IOException) { }
    }
}

/// <summary>
/// `deeplab serve` on a real Kestrel on loopback: every endpoint against the CLI's own outputs, each bad input as a
/// JSON error with its status, micro-batching, the metrics, queue and timeout limits, and a graceful SIGTERM.
/// </summary>
public class ServeTests(ServeFixture f) : IClassFixture<ServeFixture>
{
    private HttpClient Client => f.Server.Client;

    private static ByteArrayContent Body(byte[] bytes, string type = "image/png")
    {
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue(type);
        return content;
    }

    private async Task<byte[]> PostOk(string path, HttpContent content, string? accept = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = content };
        if (accept != null) request.Headers.Accept.ParseAdd(accept);
        using var response = await Client.SendAsync(request);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path}: {(int)response.StatusCode} {System.Text.Encoding.UTF8.GetString(bytes)}");
        return bytes;
    }

    /// <summary>The decoded PNG's values (palette indices or gray levels).</summary>
    private static byte[] Values(byte[] png) => ImageCodec.DecodeMask("response", png).Indices;

    [Fact]
    public async Task ModelHealthAndOpenApiDescribeTheServer()
    {
        var model = JsonDocument.Parse(await Client.GetStringAsync("/v1/model")).RootElement;
        Assert.Equal(new[] { "background", "person" }, model.GetProperty("classes").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("mobilenet", model.GetProperty("backbone").GetString());
        Assert.Equal(16, model.GetProperty("output_stride").GetInt32());
        Assert.Equal("torch", model.GetProperty("engine").GetString());
        Assert.Equal("float32", model.GetProperty("precision").GetString());
        Assert.Equal("ok", JsonDocument.Parse(await Client.GetStringAsync("/healthz")).RootElement.GetProperty("status").GetString());
        var openapi = JsonDocument.Parse(await Client.GetStringAsync("/openapi.json")).RootElement;
        var paths = openapi.GetProperty("paths");
        foreach (var p in new[] { "/v1/segment", "/v1/matte", "/v1/model", "/healthz", "/metrics" }) Assert.True(paths.TryGetProperty(p, out _), p);
        Assert.True(paths.GetProperty("/v1/segment").GetProperty("post").GetProperty("requestBody").GetProperty("content").TryGetProperty("image/jpeg", out _));
        var page = await Client.GetStringAsync("/");
        Assert.Contains("<title>DeepLabTorch", page);
        Assert.DoesNotContain("http://", page.Replace("http://www.w3.org", ""));   // nothing from a CDN
    }

    [Fact]
    public async Task SegmentAnswersWhatPredictWrites()
    {
        var outDir = Path.Combine(f.Dir, "predict");
        var r = CliRunner.Run(f.Dir, "predict", "--weights", f.Weights, "--input", f.Photo, "--output", outDir, "--save-probs", "--prob-class", "person",
            "--device", "cpu", "--quiet");
        Assert.True(r.Code == 0, r.Stderr);
        var expectedMask = ImageCodec.DecodeMask(Path.Combine(outDir, "photo.png")).Indices;
        var expectedProb = ImageCodec.DecodeMask(Path.Combine(outDir, "photo_prob.png")).Indices;

        Assert.Equal(expectedMask, Values(await PostOk("/v1/segment", Body(f.PhotoBytes))));
        Assert.Equal(expectedProb, Values(await PostOk("/v1/segment?prob=person", Body(f.PhotoBytes, "application/octet-stream"))));
        var multipart = new MultipartFormDataContent { { Body(f.PhotoBytes), "image", "photo.png" } };
        Assert.Equal(expectedMask, Values(await PostOk("/v1/segment", multipart)));

        var json = JsonDocument.Parse(await PostOk("/v1/segment", Body(f.PhotoBytes), "application/json")).RootElement;
        Assert.Equal(ServeFixture.Width, json.GetProperty("width").GetInt32());
        Assert.Equal(ServeFixture.Height, json.GetProperty("height").GetInt32());
        var counts = json.GetProperty("classes").EnumerateArray().ToDictionary(c => c.GetProperty("index").GetInt32(), c => c.GetProperty("pixels").GetInt64());
        for (int k = 0; k < 2; k++)
            Assert.Equal(expectedMask.LongCount(v => v == k), counts.GetValueOrDefault(k));
        Assert.True(json.GetProperty("timings").GetProperty("total_ms").GetDouble() > 0);
    }

    [Fact]
    public async Task MatteAnswersWhatTheMatteVerbWrites()
    {
        var target = Path.Combine(f.Dir, "matte", "out.png");
        var r = CliRunner.Run(f.Dir, "matte", "--weights", f.Weights, "--input", f.Photo, "--background", "#2040ff", "--output", target,
            "--save-alpha", "--device", "cpu", "--quiet");
        Assert.True(r.Code == 0, r.Stderr);
        var (expected, _, _) = ImageCodec.DecodeImage(target);
        var expectedAlpha = ImageCodec.DecodeMask(Path.Combine(f.Dir, "matte", "out_alpha.png")).Indices;

        var composite = await PostOk("/v1/matte?background=%232040ff", new MultipartFormDataContent { { Body(f.PhotoBytes), "image", "photo.png" } });
        Assert.Equal(expected, ImageCodec.DecodeImage("response", composite).Rgb);
        Assert.Equal(expectedAlpha, Values(await PostOk("/v1/matte?background=blur&alpha=1", Body(f.PhotoBytes))));
        var jpeg = await PostOk("/v1/matte?background=green", Body(f.PhotoBytes), "image/jpeg");
        Assert.Equal(0xFF, jpeg[0]);
        Assert.Equal(0xD8, jpeg[1]);

        // Poisson blending: what `matte --blend poisson` writes.
        var poissonTarget = Path.Combine(f.Dir, "matte", "poisson.png");
        r = CliRunner.Run(f.Dir, "matte", "--weights", f.Weights, "--input", f.Photo, "--background", "#2040ff", "--output", poissonTarget,
            "--blend", "poisson", "--device", "cpu", "--quiet");
        Assert.True(r.Code == 0, r.Stderr);
        var expectedPoisson = ImageCodec.DecodeImage(poissonTarget).Rgb;
        Assert.NotEqual(expected, expectedPoisson);
        Assert.Equal(expectedPoisson, ImageCodec.DecodeImage("response", await PostOk("/v1/matte?background=%232040ff&blend=poisson", Body(f.PhotoBytes))).Rgb);

        // An uploaded background: a flat picture comes out where the person is not.
        var flat = ImageCodec.EncodePng(Enumerable.Repeat((byte)200, 20 * 30 * 3).ToArray(), 20, 30);
        var withPicture = await PostOk("/v1/matte", new MultipartFormDataContent { { Body(f.PhotoBytes), "image", "p.png" }, { Body(flat), "background", "b.png" } });
        var (rgb, h, w) = ImageCodec.DecodeImage("response", withPicture);
        Assert.Equal((ServeFixture.Height, ServeFixture.Width), (h, w));
        for (int i = 0; i < expectedAlpha.Length; i++)
            if (expectedAlpha[i] == 0) Assert.Equal(200, rgb[3 * i]);
    }

    public static TheoryData<string, string, string, int, string> BadRequests => new()
    {
        { "/v1/segment", "empty", "", 400, "is empty" },
        { "/v1/segment", "text", "", 415, "not an image" },
        { "/v1/segment", "truncated", "", 400, "cannot be decoded" },
        { "/v1/segment", "large-upload", "", 413, "--max-upload-mb" },
        { "/v1/segment", "many-pixels", "", 413, "--max-pixels" },
        { "/v1/segment", "photo", "?prob=zebra", 400, "not a class" },
        { "/v1/matte", "photo", "?background=/etc/passwd", 400, "unknown background" },
        { "/v1/matte", "photo", "", 400, "no background" },
        { "/v1/matte", "photo", "?background=red&blend=magic", 400, "blend must be alpha or poisson" },
    };

    private byte[] Payload(string kind) => kind switch
    {
        "empty" => Array.Empty<byte>(),
        "text" => "hello, this is not an image"u8.ToArray(),
        "truncated" => f.PhotoBytes[..(f.PhotoBytes.Length / 2)],
        "large-upload" => new byte[400 * 1024],
        // 200×200 = 40,000 pixels, over --max-pixels 20000; a small file, since it is flat.
        "many-pixels" => ImageCodec.EncodePng(new byte[200 * 200 * 3], 200, 200),
        _ => f.PhotoBytes,
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task BadInputIsAJsonErrorAndTheServerKeepsServing(string path, string payload, string query, int status, string message)
    {
        using var response = await Client.PostAsync(path + query, Body(Payload(payload)));
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal(status, (int)response.StatusCode);
        var error = JsonDocument.Parse(text).RootElement;
        Assert.Contains(message, error.GetProperty("error").GetString());
        Assert.Equal(status, error.GetProperty("status").GetInt32());
        Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync("/healthz")).StatusCode);
    }

    private static long Metric(string scrape, string name)
    {
        var m = Regex.Match(scrape, "^" + Regex.Escape(name) + @" (\d+(\.\d+)?)$", RegexOptions.Multiline);
        return m.Success ? (long)double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : 0;
    }

    [Fact]
    public async Task ConcurrentRequestsShareABatchAndAnswerAsAlone()
    {
        var alone = Values(await PostOk("/v1/segment?prob=person", Body(f.PhotoBytes)));
        var before = await Client.GetStringAsync("/metrics");
        // --max-wait-ms 300 holds the first for the others: four at once make one or two forward passes.
        var answers = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => PostOk("/v1/segment?prob=person", Body(f.PhotoBytes))));
        foreach (var a in answers) Assert.Equal(alone, Values(a));
        var after = await Client.GetStringAsync("/metrics");
        long batches = Metric(after, "deeplab_batch_size_count") - Metric(before, "deeplab_batch_size_count");
        long singles = Metric(after, "deeplab_batch_size_bucket{le=\"1\"}") - Metric(before, "deeplab_batch_size_bucket{le=\"1\"}");
        Assert.True(batches < 4, $"4 concurrent requests ran as {batches} batches");
        Assert.Equal(4, Metric(after, "deeplab_images_total") - Metric(before, "deeplab_images_total"));
        Assert.Equal(4, Metric(after, "deeplab_requests_total{route=\"/v1/segment\",status=\"200\"}")
                        - Metric(before, "deeplab_requests_total{route=\"/v1/segment\",status=\"200\"}"));
        Assert.Contains("deeplab_queue_depth", after);
        Assert.Contains("deeplab_images_per_second", after);
        Assert.Contains("deeplab_request_duration_seconds_bucket{route=\"/v1/segment\",le=\"+Inf\"}", after);
    }

    [Fact]
    public async Task AFullQueueIs503WithRetryAfterAndALateAnswerIs504()
    {
        // One place in the queue, one image a pass, and images large enough that a pass takes a while.
        var big = ImageCodec.EncodePng(InferenceTestUtil.TestImage(320, 320, 3), 320, 320);
        using (var busy = ServerProcess.Start("--weights", f.Weights, "--device", "cpu", "--threads", "1", "--queue", "1", "--max-batch", "1", "--max-wait-ms", "0"))
        {
            var responses = await Task.WhenAll(Enumerable.Range(0, 12).Select(_ => busy.Client.PostAsync("/v1/segment", Body(big))));
            Assert.All(responses, r => Assert.Contains((int)r.StatusCode, new[] { 200, 503 }));
            var refused = responses.Where(r => r.StatusCode == HttpStatusCode.ServiceUnavailable).ToList();
            Assert.NotEmpty(refused);
            Assert.Equal("1", refused[0].Headers.RetryAfter?.Delta?.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Assert.Contains("queue", JsonDocument.Parse(await refused[0].Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString());
            Assert.Contains(responses, r => r.StatusCode == HttpStatusCode.OK);
        }
        using var late = ServerProcess.Start("--weights", f.Weights, "--device", "cpu", "--threads", "1", "--timeout-s", "0.001");
        using var response = await late.Client.PostAsync("/v1/segment", Body(big));
        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Contains("--timeout-s", await response.Content.ReadAsStringAsync());
    }

    [LinuxFact(LinuxOnly.Signals)]
    public async Task SigtermFinishesTheRequestsInFlight()
    {
        var big = ImageCodec.EncodePng(InferenceTestUtil.TestImage(256, 256, 5), 256, 256);
        var server = ServerProcess.Start("--weights", f.Weights, "--device", "cpu", "--threads", "1", "--max-batch", "1");
        try
        {
            var inFlight = Enumerable.Range(0, 3).Select(_ => server.Client.PostAsync("/v1/segment", Body(big))).ToArray();
            // Wait until all three are in: one running, two queued.
            for (int i = 0; i < 200 && !(await server.Client.GetStringAsync("/metrics")).Contains("deeplab_queue_depth 2"); i++) await Task.Delay(10);
            var exit = await Task.Run(server.Terminate);
            foreach (var r in await Task.WhenAll(inFlight)) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Equal(0, exit);
            Assert.Contains("requests in flight were answered", server.Stderr);
        }
        finally
        {
            server.Dispose();
        }
    }

    [Fact]
    public void BadFlagsAreOneLine()
    {
        var r = CliRunner.Run(f.Dir, "serve", "--weights", f.Weights, "--host", "example.org");
        Assert.Equal(2, r.Code);
        Assert.Contains("--host must be an IP address", r.Stderr);
        r = CliRunner.Run(f.Dir, "serve", "--weights", Path.Combine(f.Dir, "missing.safetensors"));
        Assert.NotEqual(0, r.Code);
        Assert.Contains("missing.safetensors", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
    }
}
