using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using DeepLabTorch.Training;
using Xunit;

namespace DeepLabTorch.Tests.Training;

public class LrSchedulerTests
{
    // base 0.01, 2 epochs x 5 iterations: N = 10. Values computed by hand with Python's math module.
    private static readonly double[] Poly =
    {
        0.01, 0.009095325760829623, 0.008180521460508584, 0.007254178469372199, 0.006314458674893553,
        0.005358867312681466, 0.0043838329055408696, 0.0033838346190164987, 0.0023492378861760376, 0.001258925411794167,
    };
    private static readonly double[] Cos =
    {
        0.01, 0.009755282581475769, 0.009045084971874737, 0.007938926261462366, 0.006545084971874737,
        0.005, 0.003454915028125263, 0.0020610737385376348, 0.0009549150281252633, 0.00024471741852423234,
    };

    [Fact]
    public void ExponentialWarmupAsTheFaceParsingReferences()
    {
        // base 0.01 from 1e-5 over 3 iterations, N = 10: the rate multiplies by 1000^(1/3) = 10 per iteration up to
        // iteration 3, then poly over the 7 left, 0.01 (1 - (t - 3)/7)^0.9 (by hand: 6/7 at t = 4, 1/7 at t = 9).
        var s = new LrScheduler("poly", 0.01, epochs: 2, itersPerEpoch: 5, warmupIters: 3, warmupStartLr: 1e-5);
        var expected = new[] { 1e-5, 1e-4, 1e-3, 1e-2, 0.01 * Math.Pow(6.0 / 7, 0.9), 0.01 * Math.Pow(5.0 / 7, 0.9) };
        for (var t = 0; t < expected.Length; t++) Assert.Equal(expected[t], s.LearningRate(t / 5, t % 5), 12);
        Assert.Equal(0.01 * Math.Pow(1.0 / 7, 0.9), s.LearningRate(1, 4), 12);
        Assert.Equal(1e-3, s.LearningRateAtProgress(0.1, 0, 2), 12);   // a time budget still warms up by iterations
        Assert.Throws<UserException>(() => new LrScheduler("poly", 0.01, 2, 5, warmupIters: 3, warmupStartLr: 0.1));
    }

    [Fact]
    public void PolyFollowsTheFormulaIterationByIteration()
    {
        var s = new LrScheduler("poly", 0.01, epochs: 2, itersPerEpoch: 5);
        for (var t = 0; t < 10; t++)
        {
            Assert.Equal(Poly[t], s.LearningRate(t / 5, t % 5), 15);
            Assert.Equal(0.01 * Math.Pow(1 - t / 10.0, 0.9), s.LearningRate(t / 5, t % 5), 15);
        }
    }

    [Fact]
    public void CosFollowsTheFormulaIterationByIteration()
    {
        var s = new LrScheduler("cos", 0.01, epochs: 2, itersPerEpoch: 5);
        for (var t = 0; t < 10; t++) Assert.Equal(Cos[t], s.LearningRate(t / 5, t % 5), 15);
    }

    [Fact]
    public void StepDecaysTenfoldEveryLrStepEpochs()
    {
        var s = new LrScheduler("step", 0.1, epochs: 6, itersPerEpoch: 3, lrStep: 2);
        double[] perEpoch = { 0.1, 0.1, 0.01, 0.01, 0.001, 0.001 };
        for (var e = 0; e < 6; e++)
            for (var i = 0; i < 3; i++)
                Assert.Equal(perEpoch[e], s.LearningRate(e, i), 15);
        Assert.Throws<UserException>(() => new LrScheduler("step", 0.1, 6, 3));
        Assert.Throws<UserException>(() => new LrScheduler("linear", 0.1, 6, 3));
    }

    [Fact]
    public void WarmupScalesLinearlyThenHandsOver()
    {
        var s = new LrScheduler("poly", 0.01, epochs: 2, itersPerEpoch: 5, warmupIters: 4);
        Assert.Equal(0.0, s.LearningRate(0, 0));
        Assert.Equal(Poly[1] * 1 / 4, s.LearningRate(0, 1), 15);
        Assert.Equal(Poly[3] * 3 / 4, s.LearningRate(0, 3), 15);
        Assert.Equal(Poly[4], s.LearningRate(0, 4), 15);
        Assert.Equal(Poly[7], s.LearningRate(1, 2), 15);
    }

    [Fact]
    public void ApplySetsTheHeadGroupToTenTimesTheBackbone()
    {
        using var a = torch.nn.Parameter(torch.zeros(2));
        using var b = torch.nn.Parameter(torch.zeros(2));
        static TorchSharp.Modules.SGD.Options Options() => new() { LearningRate = 1, momentum = 0.9 };
        using var opt = torch.optim.SGD(new[] { new TorchSharp.Modules.SGD.ParamGroup(new[] { a }, Options()), new TorchSharp.Modules.SGD.ParamGroup(new[] { b }, Options()) }, 1, momentum: 0.9);
        var s = new LrScheduler("poly", 0.01, epochs: 2, itersPerEpoch: 5);
        var lr = s.Apply(opt, 1, 1);
        Assert.Equal(Poly[6], lr, 15);
        Assert.Equal(Poly[6], opt.ParamGroups.First().LearningRate, 15);
        Assert.Equal(Poly[6] * 10, opt.ParamGroups.Last().LearningRate, 14);
    }
}
