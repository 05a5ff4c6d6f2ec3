using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Models;

public class BatchNormTests
{
    /// <summary>Same outputs, running statistics and counter as TorchSharp's BatchNorm2d, in train and eval mode.</summary>
    [Fact]
    public void MatchesTorchSharpsBatchNorm()
    {
        manual_seed(4);
        using var ours = new DeepLabTorch.Models.BatchNorm2d(3);
        using var theirs = nn.BatchNorm2d(3);
        using var x = randn(4, 3, 5, 6) * 3 + 1;
        for (int i = 0; i < 3; i++)
        {
            using var a = ours.forward(x);
            using var b = theirs.forward(x);
            Assert.True(a.allclose(b, 1e-6, 1e-6));
        }
        Assert.True(ours.running_mean!.allclose(theirs.running_mean!));
        Assert.True(ours.running_var!.allclose(theirs.running_var!));
        Assert.Equal(3L, ours.num_batches_tracked!.item<long>());
        ours.eval(); theirs.eval();
        using var c = ours.forward(x);
        using var d = theirs.forward(x);
        Assert.True(c.allclose(d, 1e-6, 1e-6));
    }

    /// <summary>
    /// TorchSharp's BatchNorm2d frees its counter's Scalar temporaries mid-call when a collection runs on
    /// another thread (here: one that allocates and collects in a loop, like the loader's workers); it
    /// failed within seconds in a probe. Ours counts every batch under the same pressure.
    /// </summary>
    [Fact]
    public void CountsEveryBatchWhileAnotherThreadCollects()
    {
        using var bn = new DeepLabTorch.Models.BatchNorm2d(4);
        using var x = randn(2, 4, 3, 3);
        var stop = false;
        var pressure = new Thread(() =>
        {
            while (!Volatile.Read(ref stop))
            {
                GC.KeepAlive(new float[1 << 20]);
                GC.Collect();
            }
        });
        pressure.Start();
        long n = 0;
        try
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (clock.Elapsed.TotalSeconds < 10)
            {
                using var y = bn.forward(x);
                n++;
            }
        }
        finally
        {
            Volatile.Write(ref stop, true);
            pressure.Join();
        }
        Assert.Equal(n, bn.num_batches_tracked!.item<long>());
    }
}
