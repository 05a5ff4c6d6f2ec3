using System.Diagnostics;
using System.Globalization;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Data;
using DeepLabTorch.Tests.Training;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Distributed;

/// <summary>
/// A data-parallel run as a user lives it: stopped and resumed, a rank killed, a rank failing. Every
/// job is bounded in time (MpiRunner kills it past its limit, and the test fails).
/// </summary>
public sealed class DataParallelRunTests : IDisposable
{
    private readonly string _dir = ReferenceScripts.TempDir("mpi-run");
    private string Data => Path.Combine(_dir, "portraits");

    public DataParallelRunTests() => Synthetic.Generate(Data, 20, 11, "portrait", 96, 80); // 16 training, 4 validation images

    public void Dispose() => Directory.Delete(_dir, true);

    private string[] Args(string output, params string[] extra) => new[]
    {
        "train", "--dataset", "folder", "--data-root", Data, "--backbone", "mobilenet", "--lr", "0.001", "--batch-size", "2",
        "--crop-size", "49", "--base-size", "100", "--workers", "1", "--threads", "1", "--log-interval", "1", "--seed", "5",
        "--sync-bn", "--output", output,
    }.Concat(extra).ToArray();

    private static void AssertExit0((int Code, string Stdout, string Stderr) r, string what) =>
        Assert.True(r.Code == 0, $"{what} exited {r.Code}:\n{r.Stdout}\n{r.Stderr}");

    /// <summary>
    /// Two processes, stopped mid-epoch by --max-iters and resumed on two processes, repeat the
    /// uninterrupted run exactly: the same data order on each rank, the same dropout draws (seeded by
    /// step and rank), the same losses and weights.
    /// </summary>
    [MpiFact]
    public void AResumedRunRepeatsTheUninterruptedOne()
    {
        var straight = Path.Combine(_dir, "straight");
        var split = Path.Combine(_dir, "split");
        AssertExit0(MpiRunner.Run(2, _dir, MpiRunner.Cli(Args(straight, "--epochs", "2", "--no-val"))), "the straight run");
        AssertExit0(MpiRunner.Run(2, _dir, MpiRunner.Cli(Args(split, "--epochs", "2", "--no-val", "--max-iters", "6"))), "the first part");
        var info = CheckpointStore.ReadInfo(Path.Combine(split, "last.safetensors"))!;
        Assert.Equal((1, 2), (info.Epoch, info.EpochIteration)); // 4 global batches of 2 × 2 per epoch
        var resumed = MpiRunner.Run(2, _dir, MpiRunner.Cli("train", "--resume", Path.Combine(split, "last.safetensors")));
        AssertExit0(resumed, "the resumed run");
        Assert.Contains("continuing epoch 2 at batch 3 of 4", resumed.Stderr);

        var expected = DataParallelTrainingTests.Losses(straight);
        var actual = DataParallelTrainingTests.Losses(split);
        Assert.Equal(8, expected.Count);
        Assert.Equal(expected, actual);
        DataParallelTrainingTests.AssertCloseWeights(Path.Combine(straight, "last.safetensors"), Path.Combine(split, "last.safetensors"), 0);
    }

    /// <summary>The process of the given rank among mpirun's children (its environment names the rank).</summary>
    private static int? RankProcess(int mpirun, int rank)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)) continue;
            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var parent = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], CultureInfo.InvariantCulture);
                if (parent != mpirun) continue;
                var env = File.ReadAllText(Path.Combine(dir, "environ")).Split('\0');
                if (env.Contains($"OMPI_COMM_WORLD_RANK={rank}")) return pid;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { }
        }
        return null;
    }

    /// <summary>
    /// Rank 1 killed (SIGKILL) in the middle of training ends the whole job: mpirun exits non-zero
    /// within the time limit, naming the rank. The last checkpoint rank 0 wrote is whole, and a
    /// restart with --resume continues from it.
    /// </summary>
    [MpiFact]
    public void AKilledRankEndsTheJobAndTheLastCheckpointResumes()
    {
        var run = Path.Combine(_dir, "killed");
        var last = Path.Combine(run, "last.safetensors");
        var (mpirun, stdout, stderr) = MpiRunner.Start(new[] { ("-np", 2, MpiRunner.Cli(Args(run, "--epochs", "200", "--no-val"))) }, _dir);
        using (mpirun)
        {
            try
            {
                // Wait for a checkpoint (written at each epoch's end), then for training to go on past it.
                var clock = Stopwatch.StartNew();
                while (!File.Exists(last) && !mpirun.HasExited && clock.Elapsed < TimeSpan.FromSeconds(180)) Thread.Sleep(200);
                Assert.True(File.Exists(last), $"no checkpoint after {clock.Elapsed.TotalSeconds:0} s:\n{(mpirun.HasExited ? stdout.Result + stderr.Result : "")}");
                Thread.Sleep(1500);
                var victim = RankProcess(mpirun.Id, 1);
                Assert.True(victim is not null, "rank 1's process was not found among mpirun's children");
                Process.GetProcessById(victim!.Value).Kill();
                Assert.True(mpirun.WaitForExit(60_000), "mpirun did not end within 60 s of rank 1's death");
                mpirun.WaitForExit();
            }
            finally
            {
                if (!mpirun.HasExited) mpirun.Kill(entireProcessTree: true);
            }
            Assert.NotEqual(0, mpirun.ExitCode);
            Assert.Contains("rank 1", stdout.Result + stderr.Result);
        }

        // The checkpoint is whole: its header, its metadata and every tensor read back.
        var info = CheckpointStore.ReadInfo(last)!;
        Assert.True(info.Epoch >= 1, $"the checkpoint records epoch {info.Epoch}");
        using (var file = Safetensors.Read(last))
            Assert.Contains("decoder.last_conv.8.weight", file.Tensors.Keys);
        Assert.DoesNotContain(Directory.EnumerateFiles(run), f => f.EndsWith(".tmp", StringComparison.Ordinal));

        var resumed = MpiRunner.Run(2, _dir, MpiRunner.Cli("train", "--resume", last, "--epochs", (info.Epoch + 1).ToString(CultureInfo.InvariantCulture)));
        AssertExit0(resumed, "the resumed run");
        Assert.Contains($"resume: {last} after epoch {info.Epoch}", resumed.Stderr);
        Assert.Equal(info.Epoch + 1, CheckpointStore.ReadInfo(last)!.Epoch);
    }

    /// <summary>
    /// An exception on one rank (here: rank 1 reads a copy of the data set whose images are damaged,
    /// through mpirun's per-rank command lines) ends the job at once: the message names the rank and
    /// the file, and mpirun exits non-zero instead of leaving rank 0 waiting in the all-reduce.
    /// </summary>
    [MpiFact]
    public void AnExceptionOnOneRankEndsTheJobNamingTheRank()
    {
        var damaged = Path.Combine(_dir, "damaged");
        foreach (var f in Directory.EnumerateFiles(Data, "*", SearchOption.AllDirectories))
        {
            var to = Path.Combine(damaged, Path.GetRelativePath(Data, f));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(f, to);
        }
        foreach (var image in Directory.EnumerateFiles(Path.Combine(damaged, "images")))
            File.WriteAllBytes(image, new byte[] { 0xFF, 0xD8, 0xFF, 0x00, 0x13, 0x37 });
        var run = Path.Combine(_dir, "failing");
        var args0 = Args(run, "--epochs", "2", "--no-val");
        var args1 = args0.Select(a => a == Data ? damaged : a).ToArray();
        var r = MpiRunner.Run(new[] { ("-np", 1, MpiRunner.Cli(args0)), ("-np", 1, MpiRunner.Cli(args1)) }, _dir, 120);
        // MPI_Abort's code, 2 for bad input, is mpirun's.
        Assert.True(r.Code == 2, $"mpirun exited {r.Code}:\n{r.Stdout}\n{r.Stderr}");
        Assert.Matches(@"deeplab: rank 1 of 2 failed: .*damaged.*images.*\.jpg: corrupt", r.Stderr);
    }

    /// <summary>`deeplab train --nproc 2` runs mpirun itself: two processes, rank 0 speaking for them.</summary>
    [MpiFact]
    public void NprocStartsTheProcessesItself()
    {
        var run = Path.Combine(_dir, "nproc");
        var r = Cli.CliRunner.Run(_dir, Args(run, "--epochs", "1", "--max-iters", "2", "--nproc", "2", "--max-val-images", "3"));
        AssertExit0(r, "train --nproc 2");
        // Log messages, on stderr: the launcher's, then rank 0's.
        Assert.Contains("--nproc 2: mpirun -np 2", r.Stderr);
        Assert.Contains("rank 0 of 2", r.Stderr);
        Assert.Contains("validation (3 images", r.Stderr); // 3 images: blocks of 1 and 2, counts summed
        Assert.Equal(2, CheckpointStore.ReadInfo(Path.Combine(run, "last.safetensors"))!.Iteration);
    }
}
