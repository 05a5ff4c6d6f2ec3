using DeepLabTorch.Extensions;
using DeepLabTorch.Models;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Models;

/// <summary>The whole face-parsing networks in the catalogue: built by name, recognised by their keys, one optimizer group per recipe part.</summary>
public class NetworkCatalogueTests
{
    [Theory]
    // BiSeNet(19) has 13,300,416 (the reference's count); 5 classes drop 14 outputs of the 256-wide main classifier and of the two 64-wide auxiliary ones.
    [InlineData("bisenet", 13_300_416L - 14 * 256 - 2 * 14 * 64)]
    [InlineData("stdc1", 0L)]
    [InlineData("stdc2", 0L)]
    public void EachNetworkIsBuiltByNameAndRecognisedByItsKeys(string name, long expectedParameters)
    {
        using var model = ModelFactory.Build(new ModelConfig(name, 16, 5));
        Assert.Equal(name, model.Config.Backbone);
        Assert.Equal(5, model.Config.NumClasses);
        var keys = model.StateDictInOrder().Keys.ToList();
        Assert.Equal(name, ModelCatalog.RecogniseName(keys));
        // Every classifier prefix names real keys with 5 output channels.
        foreach (var prefix in model.ClassifierPrefixes)
            Assert.Equal(5, model.StateDictInOrder()[prefix + ".weight"].shape[0]);
        // The recipe's groups hold every trainable parameter exactly once.
        var grouped = model.ParameterGroups().SelectMany(g => g.Parameters).ToList();
        Assert.Equal(model.parameters().Count(), grouped.Count);
        Assert.Equal(grouped.Count, grouped.Distinct(ReferenceEqualityComparer.Instance).Count());
        Assert.Equal(new[] { 1.0, 10.0 }, model.ParameterGroups().Select(g => g.LearningRateMultiplier));
        if (expectedParameters > 0) Assert.Equal(expectedParameters, ModelFactory.ParameterCount(model));
        Assert.Contains(name, ModelCatalog.AllNames);
        Assert.DoesNotContain(name, ModelCatalog.Names);
    }

    [Fact]
    public void DeepLabKeysAreNotTakenForAWholeNetworkAndTheReverse()
    {
        using var deeplab = ModelFactory.Build(new ModelConfig("mobilenet", 16, 3));
        Assert.IsType<DeepLabV3Plus>(deeplab);
        Assert.Equal("mobilenet", ModelCatalog.RecogniseName(deeplab.StateDictInOrder().Keys));
        var e = Assert.Throws<UserException>(() => ModelFactory.Create(new ModelConfig("bisenet", 16, 3)));
        Assert.Contains("whole network", e.Message);
    }

    [Fact]
    public void TrainingOutputsOfAWholeNetworkAreMainAuxiliaryAndDetail()
    {
        using var model = ModelFactory.Build(new ModelConfig("stdc1", 16, 4));
        model.train();
        using var x = randn(2, 3, 64, 64);
        using var o = model.ForwardAll(x);
        Assert.Equal(new long[] { 2, 4, 64, 64 }, o.Main.shape);
        Assert.Equal(2, o.Auxiliary.Count);
        Assert.Single(o.Detail);
        using var one = randn(1, 3, 64, 64);
        Assert.Throws<ArgumentException>(() => model.forward(one));
        model.FreezeBatchNorm = true;   // frozen statistics: a batch of one is fine
        using var y = model.forward(one);
        Assert.Equal(new long[] { 1, 4, 64, 64 }, y.shape);
    }
}
