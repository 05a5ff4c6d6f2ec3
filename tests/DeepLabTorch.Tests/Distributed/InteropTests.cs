using DeepLabTorch.Tests.Training;
using Xunit;

namespace DeepLabTorch.Tests.Distributed;

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
}
