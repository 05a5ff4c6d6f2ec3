using DeepLabTorch.Training;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Training;

/// <summary>
/// HeldScalarSgd against PyTorch's SGD rule computed by hand in double precision here
/// (d = g + wd·p; b = d on the first step, else μ·b + (1 − dampening)·d; d = d + μ·b with Nesterov, else b;
/// p −= lr·d), and under a garbage collector that runs all the time on another thread.
/// </summary>
public class HeldScalarSgdTests
{
    /// <summary>The loss Σ c·p gives each parameter the constant gradient c, whatever its value.</summary>
    private static readonly double[] Grad = { 0.5, -1.25, 2.0, 0.0, -0.75 };
    private static readonly double[] Start = { 1.0, -2.0, 0.25, 3.0, -0.5 };

    private static double[] Expected(int steps, double lr, double momentum, double dampening, double wd, bool nesterov)
    {
        var p = (double[])Start.Clone();
        var buf = new double[p.Length];
        for (int s = 0; s < steps; s++)
            for (int i = 0; i < p.Length; i++)
            {
                double d = Grad[i] + wd * p[i];
                if (momentum != 0)
                {
                    buf[i] = s == 0 ? d : momentum * buf[i] + (1 - dampening) * d;
                    d = nesterov ? d + momentum * buf[i] : buf[i];
                }
                p[i] -= lr * d;
            }
        return p;
    }

    private static (Parameter P, Tensor C) Param()
    {
        var p = new Parameter(tensor(Start, ScalarType.Float64));
        var c = tensor(Grad, ScalarType.Float64);
        return (p, c);
    }

    private static void Step(SGD opt, Parameter p, Tensor c)
    {
        using var scope = NewDisposeScope();
        opt.zero_grad();
        p.mul(c).sum().backward();
        opt.step();
    }

    [Theory]
    [InlineData(0.1, 0.0, 0.0, 0.0, false)]
    [InlineData(0.1, 0.9, 0.0, 0.0, false)]
    [InlineData(0.05, 0.9, 0.0, 1e-2, false)]
    [InlineData(0.05, 0.9, 0.0, 1e-2, true)]
    [InlineData(0.2, 0.5, 0.3, 5e-3, false)]
    public void MatchesTheUpdateRuleOverFourSteps(double lr, double momentum, double dampening, double wd, bool nesterov)
    {
        var (p, c) = Param();
        using (p)
        using (c)
        {
            var group = new SGD.ParamGroup(new[] { p }, new SGD.Options { LearningRate = lr, momentum = momentum, dampening = dampening, weight_decay = wd, nesterov = nesterov, maximize = false });
            using var opt = new HeldScalarSgd(new[] { group }, lr, momentum, dampening, wd, nesterov);
            for (int s = 0; s < 4; s++) Step(opt, p, c);
            var got = p.data<double>().ToArray();
            var want = Expected(4, lr, momentum, dampening, wd, nesterov);
            for (int i = 0; i < want.Length; i++) Assert.True(Math.Abs(got[i] - want[i]) < 1e-12, $"element {i}: {got[i]} vs {want[i]}");
        }
    }

    [Fact]
    public void LearningRateChangesBetweenStepsAreUsed()
    {
        var (p, c) = Param();
        using (p)
        using (c)
        {
            using var opt = SgdLike(p, 0.1);
            Step(opt, p, c);
            opt.ParamGroups.First().LearningRate = 0.01;
            Step(opt, p, c);
            // Step 1 at lr 0.1 (b = g), step 2 at lr 0.01 (b = 0.9·g + g).
            var got = p.data<double>().ToArray();
            for (int i = 0; i < Start.Length; i++)
                Assert.Equal(Start[i] - 0.1 * Grad[i] - 0.01 * 1.9 * Grad[i], got[i], 12);
        }
    }

    private static HeldScalarSgd SgdLike(Parameter p, double lr) =>
        new(new[] { new SGD.ParamGroup(new[] { p }, new SGD.Options { LearningRate = lr, momentum = 0.9, dampening = 0, weight_decay = 0, nesterov = false, maximize = false }) },
            lr, 0.9, 0, 0, false);

    /// <summary>
    /// Many small parameters, so many native calls per step, while another thread forces collections and
    /// runs finalizers without pause: every step must still follow the rule exactly. A Scalar freed by the
    /// finalizer during a native call would show as a wrong value, an error, or a crash of the test host.
    /// </summary>
    [Fact]
    public void StepsStayExactWhileTheCollectorRunsOnAnotherThread()
    {
        const int count = 300, steps = 100;
        var ps = Enumerable.Range(0, count).Select(_ => new Parameter(tensor(Start, ScalarType.Float64))).ToList();
        using var c = tensor(Grad, ScalarType.Float64);
        var group = new SGD.ParamGroup(ps, new SGD.Options { LearningRate = 0.05, momentum = 0.9, dampening = 0, weight_decay = 1e-2, nesterov = true, maximize = false });
        using var opt = new HeldScalarSgd(new[] { group }, 0.05, 0.9, 0, 1e-2, true);
        using var stop = new CancellationTokenSource();
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        }) { IsBackground = true };
        collector.Start();
        try
        {
            for (int s = 0; s < steps; s++)
            {
                using var scope = NewDisposeScope();
                opt.zero_grad();
                foreach (var p in ps) p.mul(c).sum().backward();
                opt.step();
            }
        }
        finally
        {
            stop.Cancel();
            collector.Join();
        }
        var want = Expected(steps, 0.05, 0.9, 0, 1e-2, true);
        for (int k = 0; k < count; k++)
        {
            var got = ps[k].data<double>().ToArray();
            for (int i = 0; i < want.Length; i++) Assert.True(Math.Abs(got[i] - want[i]) < 1e-12, $"parameter {k} element {i}: {got[i]} vs {want[i]}");
            ps[k].Dispose();
        }
    }
}
