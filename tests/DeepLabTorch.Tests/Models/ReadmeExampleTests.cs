using DeepLabTorch.Extensions;
using DeepLabTorch.Models;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Models;

/// <summary>The README's "On TorchSharp" example, as written there (small input), with the weights from a file we save.</summary>
public class ReadmeExampleTests
{
    [Fact]
    public void TheModelComposesTrainsAndLoadsLikeAnyTorchSharpModule()
    {
        using var dir = new TempDir();
        var model = new DeepLabV3Plus(new ModelConfig("mobilenet", OutputStride: 16, NumClasses: 21));
        var head = nn.Sequential(model, nn.Softmax(1));
        var sgd = optim.SGD(model.parameters(), 0.007, momentum: 0.9);
        var before = model.Decoder.Classifier.weight.clone().DetachFromDisposeScope();
        using (var scope = NewDisposeScope())
        {
            var loss = nn.functional.cross_entropy(model.call(randn(2, 3, 129, 129)), randint(0, 21, new long[] { 2, 129, 129 }));
            loss.backward();
            sgd.step();
        }
        Assert.False(before.Equals(model.Decoder.Classifier.weight), "the step did not change the classifier");
        head.eval();
        using (var probs = head.call(randn(1, 3, 65, 65)))
        using (var total = probs.sum(1))
            Assert.True(total.allclose(ones_like(total), rtol: 1e-4, atol: 1e-4));

        var path = dir["deeplab-mobilenet.safetensors"];
        DeepLabTorch.Checkpoints.Safetensors.Write(path, model.StateDictInOrder(), new Dictionary<string, string>());
        using (var loaded = ModelLoader.Load(path))
            Assert.True(((DeepLabV3Plus)loaded.Model).Decoder.Classifier.weight.Equals(model.Decoder.Classifier.weight));
        head.Dispose();
        sgd.Dispose();
        before.Dispose();
    }
}
