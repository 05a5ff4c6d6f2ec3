using System.Globalization;
using System.Text.Json;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Data;
using DeepLabTorch.Tests.Cli;
using DeepLabTorch.Tests.Training;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Distributed;

/// <summary>
/// `mpirun -np 2 deeplab train` with batch B per process against `deeplab train` with batch 2B: the
/// same losses step by step and the same weights after a few SGD steps, through the whole trainer
/// (sharded loader, weights broadcast, gradient buckets, global-batch loss, rank-0 outputs).
/// BatchNorm is frozen or synchronised (per-process statistics would differ by design), dropout is
/// off (a mask cannot be split between processes), and the masks have no void pixels (each process
/// averages its loss over its own pixels, as PyTorch's DDP does).
/// </summary>
public sealed class DataParallelTrainingTests : IDisposable
{
    private readonly string _dir = ReferenceScripts.TempDir("mpi-train");
    private string Data => Path.Combine(_dir, "portraits");

    public DataParallelTrainingTests()
    {
        Synthetic.Generate(Data, 20, 11, "portrait", 96, 80); // 16 training images, 0/255 masks without void
        File.WriteAllText(Path.Combine(_dir, "exact.json"), "{\"dropout\": false}");
    }

    public void Dispose() => Directory.Delete(_dir, true);

    internal static string[] TrainArgs(string dir, string data, string output, int batch, params string[] extra) => new[]
    {
        "train", "--config", Path.Combine(dir, "exact.json"), "--dataset", "folder", "--data-root", data, "--backbone", "mobilenet",
        "--epochs", "3", "--batch-size", batch.ToString(CultureInfo.InvariantCulture), "--crop-size", "49", "--base-size", "100",
        "--workers", "1", "--threads", "1", "--log-interval", "1", "--seed", "5", "--output", output,
    }.Concat(extra).ToArray();

    internal static List<(long Step, double Loss)> Losses(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))
            .Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.GetProperty("type").GetString() == "train")
            .Select(e => (e.GetProperty("step").GetInt64(), e.GetProperty("loss").GetDouble()))
            .ToList();

    internal static (int Images, double MeanIoU, double PixelAccuracy) Evaluation(string run)
    {
        var e = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Last(x => x.GetProperty("type").GetString() == "eval");
        return (e.GetProperty("images").GetInt32(), e.GetProperty("miou").GetDouble(), e.GetProperty("pixel_acc").GetDouble());
    }

    /// <summary>Every weight and buffer of the two checkpoints within tol × max(1, max |expected|).</summary>
    internal static void AssertCloseWeights(string expectedFile, string actualFile, double tol)
    {
        using var a = Safetensors.Read(expectedFile);
        using var b = Safetensors.Read(actualFile);
        Assert.Equal(a.Tensors.Keys.Order(), b.Tensors.Keys.Order());
        // The optimizer's momentum buffers are the sums of the gradients, which amplify the rounding of the
        // weights they were taken at (see below); the weights they move are what the runs compare on. The
        // generator state differs by design (several processes seed it per step and rank).
        foreach (var (k, t) in a.Tensors.Where(e => !e.Key.StartsWith("optimizer.", StringComparison.Ordinal) && !e.Key.StartsWith("rng.", StringComparison.Ordinal)))
        {
            using var scope = NewDisposeScope();
            var e = t.to_type(ScalarType.Float64);
            var u = b.Tensors[k].to_type(ScalarType.Float64);
            var diff = e.sub(u).abs().max().item<double>();
            var scale = Math.Max(1, e.abs().max().item<double>());
            Assert.True(diff <= tol * scale, $"{k}: max |diff| {diff:g3} at a scale of {scale:g3}");
        }
    }

    /// <summary>
    /// A freshly initialised network is ill-conditioned, so the settings keep the steps smooth enough
    /// for float32 rounding to stay under 1e-5: with BatchNorm training, the image-pooling branch's
    /// BatchNorm normalises one value per image, and one process on 1 or 2 threads already differs by
    /// 1e-2 in the third loss at lr 1e-3 and batch 4; with BatchNorm frozen, nothing normalises the
    /// activations, and a perturbation of the weights at the rounding level moves single gradients by
    /// 1e-3 at lr 1e-3. At lr 1e-4 and a global batch of 16 the run-to-run spread of one process is
    /// 3e-6 in the losses and 2e-6 in the weights. A wrong gradient average (a factor 2) moves the
    /// head's weights by 1e-4 or more over the three steps.
    /// </summary>
    [MpiTheory]
    [InlineData("--freeze-bn", 8, "0.0001")]
    [InlineData("--sync-bn", 8, "0.0001")]
    public void TwoProcessesTrainAsOneWithTheDoubleBatch(string batchNorm, int batch, string lr)
    {
        var one = Path.Combine(_dir, "one" + batchNorm);
        var two = Path.Combine(_dir, "two" + batchNorm);
        // Validation on 3 images: blocks of 1 and 2 on two processes, whose confusion matrices are summed.
        var r1 = CliRunner.Run(_dir, TrainArgs(_dir, Data, one, 2 * batch, batchNorm, "--lr", lr, "--max-val-images", "3", "--max-iters", "3"));
        Assert.True(r1.Code == 0, $"one process exited {r1.Code}:\n{r1.Stdout}\n{r1.Stderr}");
        var r2 = MpiRunner.Run(2, _dir, MpiRunner.Cli(TrainArgs(_dir, Data, two, batch, batchNorm, "--lr", lr, "--max-val-images", "3", "--max-iters", "3")));
        Assert.True(r2.Code == 0, $"mpirun -np 2 exited {r2.Code}:\n{r2.Stdout}\n{r2.Stderr}");
        // Log messages, on stderr (rank 0's; the other ranks report warnings only).
        Assert.Contains("data parallel: Open MPI", r2.Stderr);
        Assert.Contains($"{16 / (2 * batch)} global batches of 2 × {batch}", r2.Stderr);
        if (batchNorm == "--sync-bn") Assert.Contains("--sync-bn: ", r2.Stderr);
        // Rank 0 alone writes: one set of outputs, no second progress or summary.
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(r2.Stderr, "run (finished|interrupted)"));

        var expected = Losses(one);
        var actual = Losses(two);
        Assert.Equal(new long[] { 1, 2, 3 }, expected.Select(e => e.Step));
        Assert.Equal(expected.Select(e => e.Step), actual.Select(e => e.Step));
        for (var i = 0; i < expected.Count; i++)
            Assert.True(Math.Abs(expected[i].Loss - actual[i].Loss) <= 1e-5 * Math.Max(1, Math.Abs(expected[i].Loss)),
                $"step {expected[i].Step}: loss {actual[i].Loss} on 2 processes, {expected[i].Loss} on one");
        AssertCloseWeights(Path.Combine(one, "last.safetensors"), Path.Combine(two, "last.safetensors"), 1e-5);

        var (e1, e2) = (Evaluation(one), Evaluation(two));
        Assert.Equal(3, e2.Images);
        Assert.Equal(e1.Images, e2.Images);
        Assert.True(Math.Abs(e1.PixelAccuracy - e2.PixelAccuracy) < 1e-4 && Math.Abs(e1.MeanIoU - e2.MeanIoU) < 1e-4,
            $"validation: mIoU {e2.MeanIoU} / pixel acc {e2.PixelAccuracy} on 2 processes, {e1.MeanIoU} / {e1.PixelAccuracy} on one");
    }
}
