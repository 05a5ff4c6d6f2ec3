using System.Text.Json;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Data;
using DeepLabTorch.Tests.Training;
using Xunit;
using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Cli;

/// <summary>
/// Exact resume at the command line: training N epochs straight, and training that stops (at an
/// epoch boundary, or in the middle of an epoch) and is resumed to N, give the same per-iteration
/// losses and bitwise the same final weights and optimizer state (CPU, fixed thread count).
/// </summary>
public sealed class ResumeEqualityTests : IDisposable
{
    private readonly string _dir = ReferenceScripts.TempDir("cli-resume");
    private string Data => Path.Combine(_dir, "synth");

    public ResumeEqualityTests() => Synthetic.Generate(Data, 20, 11, "voc", 80, 64); // 16 train images: 4 batches of 4

    public void Dispose() => Directory.Delete(_dir, true);

    private string Train(string output, params string[] extra)
    {
        var args = new List<string>
        {
            "train", "--dataset", "synthetic", "--data-root", Data, "--backbone", "mobilenet", "--lr", "0.02", "--epochs", "3",
            "--batch-size", "4", "--crop-size", "49", "--base-size", "64", "--workers", "2", "--threads", "2", "--no-val",
            "--log-interval", "1", "--seed", "5", "--output", output,
        };
        args.AddRange(extra);
        var (code, stdout, stderr) = CliRunner.Run(_dir, args.ToArray());
        Assert.True(code == 0, $"deeplab {string.Join(" ", args)} exited {code}:\n{stdout}\n{stderr}");
        return stderr; // the messages
    }

    private static List<(long Step, double Loss, double Lr)> Losses(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))
            .Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.GetProperty("type").GetString() == "train")
            .Select(e => (e.GetProperty("step").GetInt64(), e.GetProperty("loss").GetDouble(), e.GetProperty("lr").GetDouble()))
            .ToList();

    private static void AssertSameTensors(string expectedFile, string actualFile)
    {
        using var a = Safetensors.Read(expectedFile);
        using var b = Safetensors.Read(actualFile);
        Assert.Equal(a.Tensors.Keys.Order(), b.Tensors.Keys.Order());
        foreach (var (k, t) in a.Tensors)
        {
            var u = b.Tensors[k];
            Assert.Equal(t.shape, u.shape);
            Assert.True(t.Equals(u), $"{k} differs after resume (max |diff| {(t.to_type(ScalarType.Float64) - u.to_type(ScalarType.Float64)).abs().max().ToDouble()})");
        }
    }

    [Theory]
    [InlineData(4)] // stops at the end of epoch 1
    [InlineData(6)] // stops after batch 2 of epoch 2
    public void StoppingAndResumingEqualsTrainingStraight(int stopAfter)
    {
        var straight = Path.Combine(_dir, "straight");
        if (!File.Exists(Path.Combine(straight, "last.safetensors"))) Train(straight);
        var split = Path.Combine(_dir, $"split-{stopAfter}");
        Train(split, "--max-iters", stopAfter.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var info = CheckpointStore.ReadInfo(Path.Combine(split, "last.safetensors"))!;
        Assert.Equal(stopAfter, info.Iteration);
        Assert.Equal(stopAfter / 4, info.Epoch);
        Assert.Equal(stopAfter % 4, info.EpochIteration);
        var resumed = Train(split, "--resume", Path.Combine(split, "last.safetensors"));
        if (stopAfter % 4 != 0) Assert.Contains($"continuing epoch 2 at batch {stopAfter % 4 + 1}", resumed);

        var expected = Losses(straight);
        var actual = Losses(split);
        Assert.Equal(12, expected.Count);
        Assert.Equal(expected.Select(e => e.Step), actual.Select(e => e.Step));
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Lr, actual[i].Lr, 12);
            Assert.True(expected[i].Loss == actual[i].Loss, $"step {expected[i].Step}: loss {actual[i].Loss} after resume, {expected[i].Loss} straight");
        }
        AssertSameTensors(Path.Combine(straight, "last.safetensors"), Path.Combine(split, "last.safetensors"));
    }

    [Fact]
    public void KeepWritesPeriodicCheckpointsThatResumeExactly()
    {
        var kept = Path.Combine(_dir, "kept");
        var log = Train(kept, "--keep", "2");
        Assert.False(File.Exists(Path.Combine(kept, "epoch-0001.safetensors")));
        Assert.True(File.Exists(Path.Combine(kept, "epoch-0002.safetensors")));
        Assert.True(File.Exists(Path.Combine(kept, "epoch-0003.safetensors")));
        Assert.Contains("epoch-0001.safetensors", log); // the pruning is logged
        Assert.Equal(2, CheckpointStore.ReadInfo(Path.Combine(kept, "epoch-0002.safetensors"))!.Epoch);

        var again = Path.Combine(_dir, "from-epoch-2");
        Train(again, "--resume", Path.Combine(kept, "epoch-0002.safetensors"));
        AssertSameTensors(Path.Combine(kept, "last.safetensors"), Path.Combine(again, "last.safetensors"));
    }
}
