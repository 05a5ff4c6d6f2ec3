using DeepLabTorch.Distributed;
using DeepLabTorch.Runtime;
using DeepLabTorch.Tests.Training;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Distributed;

/// <summary>A fact that reports itself skipped, saying what is missing, without two CUDA GPUs, NCCL and Open MPI.</summary>
public sealed class NcclFactAttribute : FactAttribute
{
    public NcclFactAttribute()
    {
        TorchRuntime.EnsureLoaded();
        if (!cuda.is_available())
            Skip = "NCCL path skipped: CUDA is not available (CPU backend or no GPU); on a machine with 2 GPUs build with -p:TorchBackend=cuda to run it";
        else if (cuda.device_count() < 2)
            Skip = $"NCCL path skipped: it needs 2 GPUs (one per process), this machine has {cuda.device_count()}";
        else if (Nccl.Unavailable() is { } why)
            Skip = "NCCL path skipped: " + why;
        else if (MpiRunner.Missing is { } mpi)
            Skip = "NCCL path skipped: " + mpi;
    }
}

/// <summary>The MPI interop and SyncBatchNorm, each checked inside real MPI jobs of 2 and 3 processes (MpiWorker).</summary>
public sealed class InteropTests : IDisposable
{
    private readonly string _dir = ReferenceScripts.TempDir("mpi-interop");

    public void Dispose() => Directory.Delete(_dir, true);

    private void AssertEveryRankPassed(int processes, (int Code, string Stdout, string Stderr) r)
    {
        Assert.True(r.Code == 0, $"mpirun exited {r.Code}:\n{r.Stdout}\n{r.Stderr}");
        for (var rank = 0; rank < processes; rank++)
            Assert.Matches($"PASS rank {rank}: [1-9][0-9]* checks", r.Stdout);
        Assert.DoesNotContain("FAIL", r.Stdout);
    }

    [MpiFact]
    public void AllReduceBroadcastAndBarrierOnTwoProcesses() =>
        AssertEveryRankPassed(2, MpiRunner.Run(2, _dir, MpiRunner.Worker("interop", _dir)));

    [MpiFact]
    public void AllReduceBroadcastAndBarrierOnThreeProcesses() =>
        AssertEveryRankPassed(3, MpiRunner.Run(3, _dir, MpiRunner.Worker("interop", _dir)));

    [MpiFact]
    public void SyncBatchNormOnTwoProcessesEqualsBatchNormOverTheWholeBatch() =>
        AssertEveryRankPassed(2, MpiRunner.Run(2, _dir, MpiRunner.Worker("syncbn")));

    [MpiFact]
    public void SyncBatchNormOnThreeProcessesEqualsBatchNormOverTheWholeBatch() =>
        AssertEveryRankPassed(3, MpiRunner.Run(3, _dir, MpiRunner.Worker("syncbn")));

    [NcclFact]
    public void NcclAllReduceAndBroadcastOnTwoGpus() =>
        AssertEveryRankPassed(2, MpiRunner.Run(2, _dir, MpiRunner.Worker("nccl")));
}
