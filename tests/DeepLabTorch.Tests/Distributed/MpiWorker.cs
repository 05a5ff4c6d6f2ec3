using DeepLabTorch.Distributed;
using DeepLabTorch.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Distributed;

/// <summary>
/// The test assembly's own entry point, for the processes that mpirun starts in the distributed tests
/// (`mpirun -np N dotnet DeepLabTorch.Tests.dll MODE DIR`); the test runner never calls it. Each mode
/// checks its results on every rank and prints "PASS rank R: N checks" or "FAIL rank R: why" (exit 1).
/// </summary>
public static class MpiWorker
{
    public static int Main(string[] args)
    {
        if (args.Length == 0)
        {
            Console.Error.WriteLine("usage: dotnet DeepLabTorch.Tests.dll interop|syncbn|nccl [DIR]");
            return 2;
        }
        using var group = Launcher.Join();
        var checks = new Checks(group.Rank);
        try
        {
            switch (args[0])
            {
                case "interop": Interop(group, checks, args.Length > 1 ? args[1] : Path.GetTempPath()); break;
                case "syncbn": SyncBn(group, checks); break;
                case "nccl": NcclAllReduce(group, checks); break;
                default: throw new ArgumentException($"unknown mode {args[0]}");
            }
            group.Barrier();
        }
        catch (Exception e)
        {
            Console.WriteLine($"FAIL rank {group.Rank}: {e.GetType().Name}: {e.Message}");
            Console.Out.Flush();
            group.Abort(1);
            return 1;
        }
        Console.WriteLine($"PASS rank {group.Rank}: {checks.Count} checks");
        return 0;
    }

    private sealed class Checks(int rank)
    {
        public int Count { get; private set; }

        public void True(bool ok, string what)
        {
            Count++;
            if (!ok) throw new InvalidOperationException($"rank {rank}: {what}");
        }

        /// <summary>max |a - b| within tol × max(1, max |b|).</summary>
        public void Close(Tensor actual, Tensor expected, double tol, string what)
        {
            using var scope = NewDisposeScope();
            True(actual.shape.SequenceEqual(expected.shape), $"{what}: shape [{string.Join(",", actual.shape)}] against [{string.Join(",", expected.shape)}]");
            var a = actual.detach().to(ScalarType.Float64);
            var b = expected.detach().to(ScalarType.Float64);
            var diff = a.sub(b).abs().max().item<double>();
            var scale = Math.Max(1.0, b.abs().max().item<double>());
            True(diff <= tol * scale, $"{what}: max |diff| {diff:g3} over a scale of {scale:g3} (tolerance {tol:g1})");
        }
    }

    /// <summary>All-reduce of each dtype at odd sizes, non-contiguous tensors, host spans, broadcasts from two roots, a barrier that orders a file.</summary>
    private static void Interop(ProcessGroup g, Checks check, string dir)
    {
        check.True(g.IsDistributed && g.Size >= 2, $"expected a world of 2 or more, got {g.Size}");
        check.True(g.LocalSize == g.Size && g.LocalRank == g.Rank, $"one machine: local rank {g.LocalRank} of {g.LocalSize}");
        long triangle = (long)g.Size * (g.Size + 1) / 2;
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.Float64, ScalarType.Int64 })
        {
            foreach (var n in new long[] { 1, 7, 1023, 65537 })
            {
                using var scope = NewDisposeScope();
                // Rank r holds (r + 1) * i: the sum is size(size+1)/2 * i, exact in every dtype at these sizes.
                var t = arange(n, ScalarType.Int64).mul(g.Rank + 1).to(dtype);
                g.AllReduceSum(t);
                var expected = arange(n, ScalarType.Int64).mul(triangle).to(dtype);
                check.True(t.equal(expected).all().item<bool>(), $"all-reduce of {n} {dtype}");

                var b = full(n, g.Rank + 10, ScalarType.Int64).to(dtype);
                var root = g.Size - 1;
                g.Broadcast(b, root);
                check.True(b.eq(root + 10).all().item<bool>(), $"broadcast of {n} {dtype} from rank {root}");
            }
            using (var scope = NewDisposeScope())
            {
                // A transposed view: summed through a packed copy and written back in place.
                var m = arange(35, ScalarType.Int64).view(5, 7).mul(g.Rank + 1).to(dtype).t();
                check.True(!m.is_contiguous(), "the transposed view is strided");
                g.AllReduceSum(m);
                var expected = arange(35, ScalarType.Int64).view(5, 7).mul(triangle).to(dtype).t();
                check.True(m.equal(expected).all().item<bool>(), $"all-reduce of a transposed 5x7 {dtype}");
            }
        }
        using (var scope = NewDisposeScope())
        {
            var flags = tensor(new[] { g.Rank == 0, true, false });
            g.Broadcast(flags, 0);
            check.True(flags.equal(tensor(new[] { true, true, false })).all().item<bool>(), "broadcast of a bool tensor");
            var wrong = ones(3, ScalarType.Int32);
            try
            {
                g.AllReduceSum(wrong);
                check.True(false, "all-reduce of int32 was accepted");
            }
            catch (ArgumentException e)
            {
                check.True(e.Message.Contains("Int32", StringComparison.Ordinal), "the int32 refusal names the dtype: " + e.Message);
            }
        }
        Span<double> d = stackalloc double[] { g.Rank + 0.25, -1, 3 };
        g.AllReduceSum(d);
        check.True(d[0] == triangle - g.Size + 0.25 * g.Size && d[1] == -g.Size && d[2] == 3 * g.Size, "all-reduce of a double span");
        Span<long> l = stackalloc long[] { long.MaxValue / 4, g.Rank };
        g.AllReduceSum(l);
        check.True(l[0] == long.MaxValue / 4 * g.Size && l[1] == triangle - g.Size, "all-reduce of an int64 span");
        var bytes = new byte[13];
        if (g.Rank == 1) for (var i = 0; i < bytes.Length; i++) bytes[i] = (byte)(200 + i);
        g.Broadcast(bytes, 1);
        check.True(bytes.Select((v, i) => v == 200 + i).All(x => x), "broadcast of 13 bytes from rank 1");

        // Barrier: what rank 0 writes before it, every rank sees after it.
        var marker = Path.Combine(dir, "barrier-marker");
        if (g.IsRoot) File.WriteAllText(marker, "written before the barrier");
        g.Barrier();
        check.True(File.Exists(marker), "rank 0's file exists after the barrier");
        g.Barrier();
        if (g.IsRoot) File.Delete(marker);
    }

    /// <summary>
    /// SyncBatchNorm on each rank's slice of a global batch (uneven slices) against TorchSharp's
    /// BatchNorm over the whole batch in one process: outputs, input gradients, weight and bias
    /// gradients (summed over ranks), running statistics, for two training steps and in eval mode.
    /// </summary>
    private static void SyncBn(ProcessGroup g, Checks check)
    {
        // bfloat16: the input only (--precision bf16 keeps BatchNorm's parameters and statistics in float32); its
        // tolerance is a few of bfloat16's 2^-8 steps, since each side rounds its float32 result once.
        foreach (var (dtype, tol) in new[] { (ScalarType.Float32, 1e-5), (ScalarType.Float64, 1e-10), (ScalarType.BFloat16, 2e-2) })
        {
            using var scope = NewDisposeScope();
            const int c = 5;
            var parameters = dtype == ScalarType.BFloat16 ? ScalarType.Float32 : dtype;
            var sizes = Enumerable.Range(0, g.Size).Select(r => r + 2).ToArray(); // uneven: 2, 3, ...
            var total = sizes.Sum();
            var start = sizes.Take(g.Rank).Sum();
            using var reference = new BatchNorm2d(c, momentum: 0.3);
            using var synced = new BatchNorm2d(c, momentum: 0.3) { Sync = new DeepLabTorch.Distributed.GroupBatchNormSync(g) };
            reference.to(parameters);
            synced.to(parameters);
            manual_seed(7);
            using (no_grad())
            {
                var w = randn(c, parameters).mul(0.5).add(1);
                var b = randn(c, parameters);
                reference.weight!.copy_(w);
                reference.bias!.copy_(b);
                synced.weight!.copy_(w);
                synced.bias!.copy_(b);
            }
            reference.train();
            synced.train();
            for (var step = 0; step < 2; step++)
            {
                // Every rank makes the same global batch; values far from zero mean, as activations are,
                // and channel 0 with a mean 40 times its spread (raw squared sums would lose its variance).
                var x = randn(new long[] { total, c, 6, 7 }, parameters).mul(3).add(5 - step);
                using (no_grad()) x.select(1, 0).mul_(1.0 / 6).add_(20);
                x = x.to(dtype);
                var upstream = randn(new long[] { total, c, 6, 7 }, parameters).to(dtype);
                var xr = x.clone().requires_grad_(true);
                var yr = reference.forward(xr);
                yr.mul(upstream).sum().backward();

                var xs = x.narrow(0, start, sizes[g.Rank]).clone().requires_grad_(true);
                var ys = synced.forward(xs);
                ys.mul(upstream.narrow(0, start, sizes[g.Rank])).sum().backward();

                var what = $"{dtype} step {step + 1}";
                check.True(ys.dtype == dtype && xs.grad!.dtype == dtype, $"{what}: output and input gradient in {dtype}, not {ys.dtype} and {xs.grad!.dtype}");
                check.Close(ys, yr.narrow(0, start, sizes[g.Rank]), tol, $"{what}: output");
                check.Close(xs.grad!, xr.grad!.narrow(0, start, sizes[g.Rank]), tol, $"{what}: input gradient");
                var gw = synced.weight!.grad!.clone();
                var gb = synced.bias!.grad!.clone();
                g.AllReduceSum(gw);
                g.AllReduceSum(gb);
                check.Close(gw, reference.weight!.grad!, tol, $"{what}: weight gradient summed over ranks");
                check.Close(gb, reference.bias!.grad!, tol, $"{what}: bias gradient summed over ranks");
                check.Close(synced.running_mean!, reference.running_mean!, tol, $"{what}: running mean");
                check.Close(synced.running_var!, reference.running_var!, tol, $"{what}: running var");
                check.True(synced.num_batches_tracked!.item<long>() == step + 1, $"{what}: batches tracked");
                foreach (var p in new[] { synced.weight!, synced.bias!, reference.weight!, reference.bias! }) p.grad!.zero_();
            }
            // Equal on every rank, bit for bit: all computed from the same all-reduced sums.
            foreach (var (name, t) in new[] { ("running mean", synced.running_mean!), ("running var", synced.running_var!) })
            {
                var root = t.clone();
                g.Broadcast(root, 0);
                check.True(root.equal(t).all().item<bool>(), $"{dtype}: {name} equal to rank 0's");
            }
            synced.eval();
            reference.eval();
            var probe = randn(new long[] { 2, c, 3, 3 }, parameters).to(dtype);
            using (no_grad()) check.Close(synced.forward(probe), reference.forward(probe), tol, $"{dtype}: eval mode uses the running statistics");
        }
    }

    /// <summary>NCCL all-reduce and broadcast of CUDA tensors, one GPU per rank.</summary>
    private static void NcclAllReduce(ProcessGroup g, Checks check)
    {
        g.UseCuda(g.LocalRank);
        using var scope = NewDisposeScope();
        var device = new Device(DeviceType.CUDA, g.LocalRank);
        long triangle = (long)g.Size * (g.Size + 1) / 2;
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.Float64, ScalarType.Int64 })
        {
            var t = arange(1023, ScalarType.Int64).mul(g.Rank + 1).to(dtype).to(device);
            g.AllReduceSum(t);
            check.True(t.cpu().equal(arange(1023, ScalarType.Int64).mul(triangle).to(dtype)).all().item<bool>(), $"NCCL all-reduce of 1023 {dtype}");
            var b = full(777, g.Rank + 10, ScalarType.Int64).to(dtype).to(device);
            g.Broadcast(b, g.Size - 1);
            check.True(b.cpu().eq(g.Size + 9).all().item<bool>(), $"NCCL broadcast of 777 {dtype}");
        }
    }
}
