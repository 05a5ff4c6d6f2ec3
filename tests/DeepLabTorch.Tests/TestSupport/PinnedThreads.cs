using static TorchSharp.torch;

namespace DeepLabTorch.Tests.TestSupport;

/// <summary>
/// Sets libtorch's process-wide intra-op thread count for one test and puts the previous count back.
/// Tests that compare float32 results with a golden made at a known thread count need it: tests that run the
/// CLI in-process (predict --threads 1, train --threads 1) leave their count behind, and a float32 reduction
/// split over a different number of threads sums in a different order.
/// </summary>
public sealed class PinnedThreads : IDisposable
{
    private readonly int _previous;

    public PinnedThreads(int threads)
    {
        DeepLabTorch.Runtime.TorchRuntime.EnsureLoaded();
        _previous = get_num_threads();
        set_num_threads(threads);
    }

    public void Dispose() => set_num_threads(_previous);
}
