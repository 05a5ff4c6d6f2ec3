using System.Text.Json;
using DeepLabTorch.Data;
using DeepLabTorch.Evaluation;
using DeepLabTorch.Reporting;
using DeepLabTorch.Tests.Training;
using Xunit;

namespace DeepLabTorch.Tests.Reporting;

public class ReportingTests : IDisposable
{
    private readonly string _dir = ReferenceScripts.TempDir("report");

    public void Dispose() => Directory.Delete(_dir, true);

    // The PNG signature plus some bytes: the HTML report embeds bytes as given.
    private static readonly byte[] FakePng = new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3, 4, 5 };

    [LinuxFact(LinuxOnly.Python)]
    public void TensorBoardEventsParseBackWithValidCrcsAndFields()
    {
        // A real 3×4 RGB image with distinct pixels: the writer may re-encode it, the pixels must stay.
        const int h = 3, w = 4;
        var rgb = new byte[h * w * 3];
        for (var k = 0; k < rgb.Length; k++) rgb[k] = (byte)(17 * k + 3);
        var png = ImageCodec.EncodePng(rgb, h, w);
        string file;
        var before = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        using (var tb = new TensorBoardWriter(Path.Combine(_dir, "tb")))
        {
            tb.AddScalar("train/loss", 0.75, 10);
            tb.AddScalar("val/mIoU", 0.5, 2);
            tb.AddImage("val/image_0", png, h, w, 2);
            file = tb.FilePath;
        }
        var after = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        Assert.Contains("tfevents", Path.GetFileName(file));
        Assert.Single(Directory.GetFiles(Path.Combine(_dir, "tb")));
        var json = ReferenceScripts.Run("train_tfevents.py", file);
        var events = JsonDocument.Parse(json).RootElement.EnumerateArray().ToList();
        Assert.Equal(4, events.Count);
        // TorchSharp 0.107 stamps this first record with .NET ticks rather than Unix seconds; only its presence is checked.
        Assert.Equal("brain.Event:2", events[0].GetProperty("file_version").GetString());

        var loss = events[1];
        Assert.Equal(10, loss.GetProperty("step").GetInt64());
        // SummaryWriter writes whole seconds: the time must fall within the writer's lifetime.
        Assert.InRange(loss.GetProperty("wall_time").GetDouble(), before - 1, after + 1);
        var v = loss.GetProperty("values")[0];
        Assert.Equal("train/loss", v.GetProperty("tag").GetString());
        Assert.Equal(0.75, v.GetProperty("simple_value").GetDouble(), 6);

        Assert.Equal(2, events[2].GetProperty("step").GetInt64());
        Assert.Equal("val/mIoU", events[2].GetProperty("values")[0].GetProperty("tag").GetString());
        Assert.Equal(0.5, events[2].GetProperty("values")[0].GetProperty("simple_value").GetDouble(), 6);

        Assert.Equal(2, events[3].GetProperty("step").GetInt64());
        var img = events[3].GetProperty("values")[0];
        Assert.Equal("val/image_0", img.GetProperty("tag").GetString());
        var i = img.GetProperty("image");
        Assert.Equal(h, i.GetProperty("height").GetInt32());
        Assert.Equal(w, i.GetProperty("width").GetInt32());
        Assert.True(i.GetProperty("png_signature_ok").GetBoolean());
        // summary.proto: 3 = RGB, 4 = RGBA. TorchSharp writes 4 for every image, whatever the PNG holds
        // (SkiaSharp stores an opaque image as RGB); TensorBoard shows the PNG as it is either way.
        Assert.Contains(i.GetProperty("colorspace").GetInt32(), new[] { 3, 4 });
        Assert.Contains(i.GetProperty("mode").GetString(), new[] { "RGB", "RGBA" });
        Assert.Equal(new[] { w, h }, i.GetProperty("size").EnumerateArray().Select(e => e.GetInt32()).ToArray());
        Assert.Equal(Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(rgb)).ToLowerInvariant(), i.GetProperty("rgb_sha256").GetString());
    }

    [LinuxFact(LinuxOnly.Python)]
    public void TheEventParserRejectsACorruptedFile()
    {
        string file;
        using (var tb = new TensorBoardWriter(Path.Combine(_dir, "tb2")))
        {
            tb.AddScalar("x", 1, 1);
            file = tb.FilePath;
        }
        var bytes = File.ReadAllBytes(file);
        bytes[^6] ^= 0x40; // flip a payload bit of the last record
        File.WriteAllBytes(file, bytes);
        var e = Assert.Throws<InvalidOperationException>(() => ReferenceScripts.Run("train_tfevents.py", file));
        Assert.Contains("CRC", e.Message);
    }

    private static SegmentationMetrics SomeMetrics() =>
        SegmentationMetrics.FromCounts(new long[] { 3, 1, 0, 0, 0, 0, 0, 0, 0 }, 3, new[] { "background", "cat & <dog>", "absent" });

    [Fact]
    public void MetricsLogWritesOneJsonObjectPerLineWithNullForNaN()
    {
        var path = Path.Combine(_dir, "metrics.jsonl");
        using (var log = new MetricsLog(path))
        {
            log.Iteration(0, 9, 10, 0.007, 1.25, 3.5);
            log.Evaluation(0, 10, SomeMetrics(), 1.5, 4);
        }
        var lines = File.ReadAllLines(path);
        Assert.Equal(2, lines.Length);
        var train = JsonDocument.Parse(lines[0]).RootElement;
        Assert.Equal("train", train.GetProperty("type").GetString());
        Assert.Equal(10, train.GetProperty("step").GetInt64());
        Assert.Equal(0.007, train.GetProperty("lr").GetDouble());
        Assert.Equal(1.25, train.GetProperty("loss").GetDouble());
        Assert.Equal(3.5, train.GetProperty("images_per_sec").GetDouble());
        var eval = JsonDocument.Parse(lines[1]).RootElement;
        Assert.Equal("eval", eval.GetProperty("type").GetString());
        Assert.Equal(0.375, eval.GetProperty("miou").GetDouble(), 12); // IoU 0.75, 0 and NaN -> NaN-mean 0.375
        Assert.Equal(0.75, eval.GetProperty("class_iou").GetProperty("background").GetDouble(), 12);
        Assert.Equal(0.0, eval.GetProperty("class_iou").GetProperty("cat & <dog>").GetDouble());
        Assert.Equal(JsonValueKind.Null, eval.GetProperty("class_iou").GetProperty("absent").ValueKind); // NaN
    }

    [Fact]
    public void HtmlReportIsSelfContainedWithCurvesTableAndImages()
    {
        var data = new ReportData(
            "run <1>",
            new[] { ("best mIoU", "37.50%") },
            new[] { (10L, 2.0), (20L, 1.5), (30L, 1.0) },
            new[] { (0, 0.2), (1, 0.375) },
            SomeMetrics(),
            new[] { new ReportImage("img0", FakePng, FakePng, FakePng) });
        var path = Path.Combine(_dir, "report.html");
        HtmlReport.Write(path, data);
        var html = File.ReadAllText(path);
        Assert.StartsWith("<!DOCTYPE html>", html);
        Assert.Equal(2, CountOf(html, "<svg"));
        Assert.Equal(3, CountOf(html, "<polyline")); // the loss (raw and smoothed) and mIoU
        Assert.Equal(3, CountOf(html, "src=\"data:image/png;base64,"));
        Assert.Contains("cat &amp; &lt;dog&gt;", html);
        Assert.Contains("run &lt;1&gt;", html);
        Assert.Contains("75.00%", html);
        Assert.DoesNotContain("<script", html);
        Assert.DoesNotContain("http://", html.Replace("http://www.w3.org/2000/svg", ""));
        Assert.Contains("no data", HtmlReport.Chart("empty", "x", Array.Empty<(double, double)>(), null, null));
    }

    private static int CountOf(string s, string what)
    {
        var n = 0;
        for (var i = s.IndexOf(what, StringComparison.Ordinal); i >= 0; i = s.IndexOf(what, i + 1, StringComparison.Ordinal)) n++;
        return n;
    }
}
