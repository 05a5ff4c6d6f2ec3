using DeepLabTorch.Models;
using DeepLabTorch.Training;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Training;

/// <summary>The recipe's optimizer groups: the head at 10×, and the face-parsing references' exemption of norms and biases from weight decay.</summary>
public class SgdFactoryTests
{
    [Fact]
    public void NormsAndBiasesCanBeExemptFromWeightDecayWithTheirGroupsRates()
    {
        using var model = ModelFactory.Build(new ModelConfig("bisenet", 16, 3));
        using var sgd = SgdFactory.Create(model, 0.01, 0.9, 5e-4, headMultiplier: 10, decayNormAndBias: false);
        var groups = sgd.ParamGroups.Cast<SGD.ParamGroup>().ToList();
        // Context path with decay, without; fusion and heads with decay, without.
        Assert.Equal(new[] { 5e-4, 0, 5e-4, 0 }, groups.Select(g => g.Options.weight_decay!.Value));
        Assert.All(groups[1].Parameters.Concat(groups[3].Parameters), p => Assert.True(p.dim() <= 1));
        Assert.All(groups[0].Parameters.Concat(groups[2].Parameters), p => Assert.True(p.dim() > 1));
        Assert.Equal(model.parameters().Count(), groups.Sum(g => g.Parameters.Count()));
        var scheduler = new LrScheduler("poly", 0.01, 1, 10, headMultiplier: 10);
        scheduler.Set(sgd, 0.002);
        Assert.Equal(new[] { 0.002, 0.002, 0.02, 0.02 }, sgd.ParamGroups.Select(g => g.LearningRate), new ToleranceComparer(1e-15));

        // The default decays everything, one group per recipe part, as DeepLabV3+'s reference.
        using var plain = SgdFactory.Create(model, 0.01, 0.9, 5e-4);
        Assert.Equal(new[] { 5e-4, 5e-4 }, plain.ParamGroups.Cast<SGD.ParamGroup>().Select(g => g.Options.weight_decay!.Value));
        scheduler.Set(plain, 0.002);
        Assert.Equal(new[] { 0.002, 0.02 }, plain.ParamGroups.Select(g => g.LearningRate), new ToleranceComparer(1e-15));
    }

    private sealed class ToleranceComparer(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double a, double b) => Math.Abs(a - b) <= tolerance;
        public int GetHashCode(double v) => 0;
    }
}
