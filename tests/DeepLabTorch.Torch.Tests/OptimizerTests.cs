using Xunit;
using static DeepLabTorch.Torch.torch;
using static DeepLabTorch.Torch.Tests.TestUtil;

namespace DeepLabTorch.Torch.Tests;

public class OptimizerTests
{
    // Loss ½·Σp² has gradient p, so each step's gradient is the current parameter value.
    private static void Backward(nn.Parameter p)
    {
        using var scope = NewDisposeScope();
        (p.square().sum() * 0.5).backward();
    }

    private static nn.Parameter Param(params double[] v)
    {
        using var t = tensor(v);
        return new nn.Parameter(t);
    }

    [Fact]
    public void SgdMomentumFirstStepsByHand()
    {
        using var p = Param(1.0);
        using var opt = new optim.SGD(new[] { p }, lr: 0.1, momentum: 0.9);
        Backward(p); opt.step(); opt.zero_grad();
        Near(0.9, p.item<double>(), 1e-15, "step 1: 1 - 0.1·1");
        Backward(p); opt.step(); opt.zero_grad();
        // buffer 0.9·1 + 0.9 = 1.8 → 0.9 − 0.18
        Near(0.72, p.item<double>(), 1e-15, "step 2");
    }

    [Theory]
    [InlineData(0.9, 0.0, 0.0, false)]
    [InlineData(0.9, 0.1, 0.0, true)]
    [InlineData(0.5, 1e-2, 0.3, false)]
    [InlineData(0.0, 5e-4, 0.0, false)]
    public void SgdMatchesScalarRecurrence(double momentum, double wd, double dampening, bool nesterov)
    {
        var start = new[] { 1.0, -2.0, 0.5 };
        using var p = Param(start);
        using var opt = new optim.SGD(new[] { p }, lr: 0.05, momentum: momentum, dampening: dampening, weight_decay: wd, nesterov: nesterov);
        var expected = (double[])start.Clone();
        var buf = new double[3];
        for (int step = 0; step < 5; step++)
        {
            Backward(p); opt.step(); opt.zero_grad();
            for (int i = 0; i < 3; i++)
            {
                double d = expected[i] + wd * expected[i];
                if (momentum != 0)
                {
                    buf[i] = step == 0 ? d : momentum * buf[i] + (1 - dampening) * d;
                    d = nesterov ? d + momentum * buf[i] : buf[i];
                }
                expected[i] -= 0.05 * d;
            }
            AllNear(expected, p.ToArray<double>(), 1e-14, $"step {step + 1}");
        }
    }

    [Fact]
    public void AdamFirstStepByHandAndScalarRecurrence()
    {
        using var p = Param(1.0, -3.0);
        using var opt = new optim.Adam(new[] { p }, lr: 0.01);
        Backward(p); opt.step(); opt.zero_grad();
        // m̂ = g, v̂ = g², so the first step moves by lr·sign(g) (ε aside).
        AllNear(new[] { 0.99, -2.99 }, p.ToArray<double>(), 1e-9, "step 1");

        double[] x = { 1 - 0.01 / (1 + 1e-8), -3 + 0.01 * 3 / (3 + 1e-8) }, m = { 0.1 * 1, 0.1 * -3 }, v = { 0.001 * 1, 0.001 * 9 };
        AllNear(x, p.ToArray<double>(), 1e-15, "step 1 with epsilon");
        for (int t = 2; t <= 6; t++)
        {
            Backward(p); opt.step(); opt.zero_grad();
            for (int i = 0; i < 2; i++)
            {
                double g = x[i];
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                double mh = m[i] / (1 - Math.Pow(0.9, t)), vh = v[i] / (1 - Math.Pow(0.999, t));
                x[i] -= 0.01 * mh / (Math.Sqrt(vh) + 1e-8);
            }
            AllNear(x, p.ToArray<double>(), 1e-12, $"step {t}");
        }
    }

    [Fact]
    public void AdamWDecaysWeightsDecoupled()
    {
        using var p = Param(2.0);
        using var opt = new optim.AdamW(new[] { p }, lr: 0.1, weight_decay: 0.5);
        Backward(p); opt.step();
        // p·(1 − lr·wd) then the Adam step of size lr: 2·0.95 − 0.1
        Near(1.8, p.item<double>(), 1e-8);
    }

    [Fact]
    public void ParamGroupsKeepTheirOwnLearningRates()
    {
        using var a = Param(1.0);
        using var b = Param(1.0);
        using var opt = new optim.SGD(new[] { new optim.ParamGroup(new[] { a }), new optim.ParamGroup(new[] { b }, lr: 1.0) }, lr: 0.1);
        Assert.Equal(0.1, opt.param_groups[0].lr);
        Assert.Equal(1.0, opt.param_groups[1].initial_lr);
        Backward(a); Backward(b); opt.step();
        Near(0.9, a.item<double>(), 1e-15);
        Near(0.0, b.item<double>(), 1e-15);
    }

    [Fact]
    public void OptimizerStateRoundTripsForExactResume()
    {
        using var p1 = Param(1.0, 2.0);
        using var o1 = new optim.SGD(new[] { p1 }, lr: 0.1, momentum: 0.9);
        for (int i = 0; i < 3; i++) { Backward(p1); o1.step(); o1.zero_grad(); }
        var (tensors, scalars) = o1.state_dict();
        Assert.Contains("state.0.momentum_buffer", tensors.Keys);

        using var p2 = Param(p1.ToArray<double>());
        using var o2 = new optim.SGD(new[] { p2 }, lr: 0.1, momentum: 0.9);
        o2.load_state_dict(tensors, scalars);
        for (int i = 0; i < 3; i++)
        {
            Backward(p1); o1.step(); o1.zero_grad();
            Backward(p2); o2.step(); o2.zero_grad();
        }
        Assert.Equal(p1.ToArray<double>(), p2.ToArray<double>());

        using var bad = Param(1.0);
        using var o3 = new optim.SGD(new[] { bad }, lr: 0.1, momentum: 0.9);
        var e = Assert.Throws<ArgumentException>(() => o3.load_state_dict(tensors, scalars));
        Assert.Contains("state.0.momentum_buffer", e.Message);
    }
}
