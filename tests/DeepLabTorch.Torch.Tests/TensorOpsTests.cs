using DeepLabTorch.Torch.Native;
using Xunit;
using static DeepLabTorch.Torch.torch;
using static DeepLabTorch.Torch.Tests.TestUtil;

namespace DeepLabTorch.Torch.Tests;

public class TensorOpsTests
{
    [Fact]
    public void FactoriesHaveShapeDtypeAndValues()
    {
        using var z = zeros(new long[] { 2, 3 }, ScalarType.Int64);
        Assert.Equal(new long[] { 2, 3 }, z.shape);
        Assert.Equal(ScalarType.Int64, z.dtype);
        Assert.All(z.ToArray<long>(), v => Assert.Equal(0, v));
        using var f = full(new long[] { 4 }, 2.5);
        Assert.Equal(new[] { 2.5f, 2.5f, 2.5f, 2.5f }, f.ToArray<float>());
        using var a = arange(0, 10, 3);
        Assert.Equal(new long[] { 0, 3, 6, 9 }, a.ToArray<long>());
        using var r = randint(0, 5, new long[] { 1000 });
        var vals = r.ToArray<long>();
        Assert.True(vals.All(v => v is >= 0 and < 5) && vals.Distinct().Count() == 5);
        foreach (var dt in new[] { ScalarType.Float16, ScalarType.BFloat16, ScalarType.Int32, ScalarType.Byte, ScalarType.Bool })
        {
            using var o = ones(new long[] { 3 }, dt);
            Assert.Equal(dt, o.dtype);
            using var back = o.to(ScalarType.Float32);
            Assert.Equal(new[] { 1f, 1f, 1f }, back.ToArray<float>());
        }
    }

    [Fact]
    public void ArraysGoInAndOutWithoutLoss()
    {
        var data = new float[] { 1, 2, 3, 4, 5, 6 };
        using var t = tensor(data, new long[] { 2, 3 });
        Assert.Equal(data, t.ToArray<float>());
        // from_array shares the memory: a change on either side is seen on the other.
        var shared = new double[] { 1, 2, 3 };
        using (var v = from_array(shared, new long[] { 3 }))
        {
            v.mul_(2);
            Assert.Equal(new double[] { 2, 4, 6 }, shared);
        }
        Assert.Throws<ArgumentException>(() => tensor(data, new long[] { 4, 2 }));
        Assert.Throws<InvalidOperationException>(() => t.ToArray<long>());
    }

    [Fact]
    public void ElementwiseMathMatchesHandComputation()
    {
        using var scope = NewDisposeScope();
        var a = T(new double[] { 1, -2, 3, 4 }, 2, 2);
        var b = T(new double[] { 0.5, 2, -1, 8 }, 2, 2);
        Assert.Equal(new double[] { 1.5, 0, 2, 12 }, (a + b).ToArray<double>());
        Assert.Equal(new double[] { 0.5, -4, 4, -4 }, (a - b).ToArray<double>());
        Assert.Equal(new double[] { 0.5, -4, -3, 32 }, (a * b).ToArray<double>());
        Assert.Equal(new double[] { 2, -1, -3, 0.5 }, (a / b).ToArray<double>());
        Assert.Equal(new double[] { 9, 12, 7, 6 }, (10 - a).ToArray<double>());
        Assert.Equal(new double[] { 1, 4, 9, 16 }, a.square().ToArray<double>());
        Assert.Equal(new double[] { 1, 0, 3, 4 }, a.relu().ToArray<double>());
        Assert.Equal(new double[] { 1, -1, 2, 2 }, a.clamp(-1, 2).ToArray<double>());
        Assert.Equal(new[] { true, false, true, false }, a.gt(b).logical_and(a.lt(4)).ToArray<bool>());
        AllNear(new[] { Math.Exp(1), Math.Exp(-2), Math.Exp(3), Math.Exp(4) }, a.exp().ToArray<double>(), 1e-12);
        AllNear(new[] { 1 / (1 + Math.Exp(-1)), 1 / (1 + Math.Exp(2)) }, a.sigmoid().flatten().slice(0, 0, 2, 1).ToArray<double>(), 1e-12);
        Assert.Equal(new double[] { 1, 2, 3, 8 }, where(a.gt(b), a, b.abs()).ToArray<double>());
        // a + 2b, then in place += (1, 1, 1, 1)
        var c = a.add(b, 2);
        Assert.Equal(new double[] { 2, 2, 1, 20 }, c.ToArray<double>());
        c.add_(ones(new long[] { 2, 2 }, ScalarType.Float64), 1);
        Assert.Equal(new double[] { 3, 3, 2, 21 }, c.ToArray<double>());
    }

    [Fact]
    public void ReductionsAndArgmax()
    {
        using var scope = NewDisposeScope();
        var a = T(new double[] { 1, 5, 2, 7, 0, 3 }, 2, 3);
        Assert.Equal(18, a.sum().item<double>());
        Assert.Equal(3, a.mean().item<double>());
        Assert.Equal(new double[] { 8, 5, 5 }, a.sum(0).ToArray<double>());
        Assert.Equal(new double[] { 8, 10 }, a.sum(1).ToArray<double>());
        Assert.Equal(new long[] { 2, 1 }, a.sum(1, keepdim: true).shape);
        Assert.Equal(7, a.max().item<double>());
        var (values, idx) = a.max(1);
        Assert.Equal(new double[] { 5, 7 }, values.ToArray<double>());
        Assert.Equal(new long[] { 1, 0 }, idx.ToArray<long>());
        Assert.Equal(new long[] { 1, 0 }, a.argmax(1).ToArray<long>());
        Assert.Equal(3, a.argmax().item<long>());
        var labels = tensor(new long[] { 0, 2, 2, 5, 2 });
        Assert.Equal(new long[] { 1, 0, 3, 0, 0, 1, 0 }, labels.bincount(minlength: 7).ToArray<long>());
        Assert.Equal(new double[] { 1, 6, 8, 15, 15, 18 }, a.flatten().cumsum(0).ToArray<double>());
    }

    [Fact]
    public void ViewsShareStorageAndReshape()
    {
        using var scope = NewDisposeScope();
        var a = arange(0, 24, 1, ScalarType.Float32).reshape(2, 3, 4);
        Assert.Equal(new long[] { 4, 3, 2 }, a.permute(2, 1, 0).shape);
        Assert.Equal(new float[] { 4, 5, 6, 7 }, a[0][1].ToArray<float>());
        Assert.Equal(new float[] { 1, 3, 5 }, a.flatten().slice(0, 1, 7, 2).ToArray<float>());
        Assert.Equal(new float[] { 12, 13, 14, 15 }, a.narrow(0, 1, 1).select(1, 0).flatten().ToArray<float>());
        var v = a.view(6, 4);
        v.select(0, 0).fill_(-1);
        Assert.Equal(-1, a[0][0][3].item<float>());
        var c = cat(new[] { zeros(2, 2), ones(1, 2) }, 0);
        Assert.Equal(new long[] { 3, 2 }, c.shape);
        var s = stack(new[] { zeros(2), ones(2) }, 1);
        Assert.Equal(new float[] { 0, 1, 0, 1 }, s.ToArray<float>());
        Assert.Equal(new float[] { 3, 2, 1, 0 }, arange(0, 4, 1, ScalarType.Float32).flip(0).ToArray<float>());
        var img = rand(1, 3, 4, 5);
        var cl = img.contiguous_channels_last();
        Assert.True(cl.is_channels_last());
        Assert.True(cl.equal(img));
        Assert.Equal(new long[] { 60, 1, 15, 3 }, cl.stride());
    }

    [Fact]
    public void NativeErrorsBecomeExceptionsAndTheNextOpStillWorks()
    {
        using var scope = NewDisposeScope();
        var x = randn(1, 3, 8, 8);
        var w = randn(4, 5, 3, 3); // expects 5 input channels, gets 3
        var e = Assert.Throws<TorchException>(() => nn.functional.conv2d(x, w));
        Assert.Contains("channels", e.Message);
        Assert.DoesNotContain("Exception raised from", e.Message);
        var ok = nn.functional.conv2d(x, randn(4, 3, 3, 3));
        Assert.Equal(new long[] { 1, 4, 6, 6 }, ok.shape);
        Assert.Throws<TorchException>(() => zeros(2, 3).view(4, 4));
        Assert.Equal(6, ones(2, 3).sum().item<float>());
    }

    [Fact]
    public void ReadingDataOutLeavesNoTensorBehind()
    {
        using var t = arange(0, 12, 1, ScalarType.Float32).reshape(3, 4).t();
        long before = Tensor.LiveCount;
        var values = t.ToArray<float>();
        var span = new float[12];
        t.CopyTo<float>(span);
        Assert.Equal(before, Tensor.LiveCount);
        Assert.Equal(new float[] { 0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11 }, values);
        Assert.Equal(values, span);
    }

    [Fact]
    public void DisposedTensorsThrowAndDoubleDisposeIsSafe()
    {
        var t = ones(3);
        t.Dispose();
        t.Dispose();
        Assert.Throws<ObjectDisposedException>(() => t.sum());
        Assert.Throws<ObjectDisposedException>(() => t.shape);
    }

    [Fact]
    public void DisposeScopesFreeTemporariesAndKeepMovedResults()
    {
        long before = Tensor.LiveCount;
        Tensor kept;
        using (var scope = NewDisposeScope())
        {
            var a = ones(4);
            var b = a * 2 + 1;
            kept = b.sum().MoveToOuterDisposeScope();
            Assert.True(scope.Count >= 3);
        }
        Assert.Equal(12, kept.item<float>());
        Assert.Equal(before + 1, Tensor.LiveCount);
        kept.Dispose();
        Assert.Equal(before, Tensor.LiveCount);
    }

    [Fact]
    public void RuntimeReportsVersionThreadsAndRng()
    {
        Assert.Matches(@"^\d+\.\d+\.\d+$", __version__);
        Assert.True(get_num_threads() >= 1);
        manual_seed(7);
        using var state = get_rng_state();
        using var a = randn(5);
        set_rng_state(state);
        using var b = randn(5);
        Assert.True(a.equal(b));
        manual_seed(7);
        using var c = randn(5);
        Assert.True(a.equal(c));
    }

    [CudaFact]
    public void CudaTensorsRoundTrip()
    {
        using var scope = NewDisposeScope();
        var a = arange(0, 6, 1, ScalarType.Float32).reshape(2, 3).cuda();
        Assert.True(a.is_cuda);
        var b = (a * 2).cpu();
        Assert.Equal(new float[] { 0, 2, 4, 6, 8, 10 }, b.ToArray<float>());
        var conv = new nn.Conv2d(3, 4, 3, padding: 1);
        conv.to(CUDA);
        var y = conv.call(randn(new long[] { 1, 3, 8, 8 }, device: CUDA));
        Assert.Equal(new long[] { 1, 4, 8, 8 }, y.shape);
        Assert.True(y.is_cuda);
    }
}
