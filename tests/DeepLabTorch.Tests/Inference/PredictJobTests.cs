using DeepLabTorch.Data;
using DeepLabTorch.Inference;
using DeepLabTorch.Models;
using Xunit;
using static DeepLabTorch.Tests.Inference.InferenceTestUtil;

namespace DeepLabTorch.Tests.Inference;

/// <summary>predict's pipeline (decoding ahead of the network, writing behind it): order, skipped files and errors.</summary>
public class PredictJobTests
{
    private static (PredictJob Job, DeepLabV3Plus Model) Job(string output, int batchSize = 1)
    {
        var model = ModelFactory.Create(new ModelConfig("mobilenet", 16, 3));
        Fill(model, 7);
        model.eval();
        var palette = ModelLoader.PaletteFor(ModelLoader.DefaultClassNames(3));
        return (new PredictJob(new Predictor(model), output, new PredictOutputs(), palette, batchSize), model);
    }

    [Fact]
    public void EveryReadableImageIsWrittenAndUnreadableOnesAreListedInOrder()
    {
        var dir = TempDir("job-order");
        try
        {
            var files = new List<string>();
            for (int i = 0; i < 7; i++)
            {
                var f = Path.Combine(dir, $"img{i}.png");
                if (i is 2 or 5) File.WriteAllText(f, "not an image");
                else ImageCodec.WritePng(f, TestImage(33 + i % 2 * 8, 41, i), 33 + i % 2 * 8, 41);
                files.Add(f);
            }
            var (job, model) = Job(Path.Combine(dir, "out"), batchSize: 2);
            using var _ = model;
            var progress = new ProgressRecorder();
            var summary = job.Run(files, progress);
            Assert.Equal(5, summary.Images);
            Assert.Equal(new[] { files[2], files[5] }, summary.FailedFiles);
            // Files through (written or skipped), reported after each batch and each skip: img0 flushed alone by img1's
            // other size (1), img2 skipped (2), img1+img3 (4), img5 skipped (5), img4+img6 (7), then the final report.
            var reports = progress.Reports;
            Assert.Equal(new long[] { 1, 2, 4, 5, 7, 7 }, reports.Select(r => r.Done));
            Assert.All(reports, r => Assert.Equal(("predict", 7L, "images"), (r.Label, r.Total ?? -1, r.Unit)));
            Assert.Equal(new[] { false, false, false, false, false, true }, reports.Select(r => r.Final));
            Assert.Empty(reports[0].Fields);
            Assert.Equal(new[] { new DeepLabTorch.Runtime.ProgressField("failed", "2") }, reports[^1].Fields);
            for (int i = 0; i < 7; i++)
            {
                var mask = Path.Combine(dir, "out", $"img{i}.png");
                if (i is 2 or 5) Assert.False(File.Exists(mask));
                else Assert.Equal((33 + i % 2 * 8, 41), (ImageCodec.DecodeMask(mask).Height, ImageCodec.DecodeMask(mask).Width));
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>A write that fails on the writing thread ends the run with that error, not a wrapper and not a hang.</summary>
    [Fact]
    public async Task AFailedWriteEndsTheRunWithItsOwnError()
    {
        var dir = TempDir("job-write");
        try
        {
            var files = Enumerable.Range(0, 6).Select(i =>
            {
                var f = Path.Combine(dir, $"img{i}.png");
                ImageCodec.WritePng(f, TestImage(33, 41, i), 33, 41);
                return f;
            }).ToList();
            var output = Path.Combine(dir, "out");
            // A folder where the third mask should go: writing that file fails.
            Directory.CreateDirectory(Path.Combine(output, "img2.png"));
            var (job, model) = Job(output);
            using var _ = model;
            var run = Task.Run(() => job.Run(files));
            var finished = await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(120)));
            Assert.True(finished == run, "predict hung after a failed write");
            var e = await Assert.ThrowsAnyAsync<Exception>(() => run);
            Assert.True(e is IOException or UnauthorizedAccessException, $"expected the write's own error, got {e.GetType().Name}: {e.Message}");
            Assert.Contains("img2.png", e.Message);
            Assert.False(File.Exists(Path.Combine(output, "img5.png")), "the run went on after the failed write");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void CancellingStopsTheRun()
    {
        var dir = TempDir("job-cancel");
        try
        {
            var f = Path.Combine(dir, "a.png");
            ImageCodec.WritePng(f, TestImage(33, 41, 1), 33, 41);
            var (job, model) = Job(Path.Combine(dir, "out"));
            using var _ = model;
            using var cts = new CancellationTokenSource();
            cts.Cancel();
            Assert.ThrowsAny<OperationCanceledException>(() => job.Run(Enumerable.Repeat(f, 20).ToList(), ct: cts.Token));
        }
        finally { Directory.Delete(dir, true); }
    }
}
