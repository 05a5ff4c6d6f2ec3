using DeepLabTorch.Checkpoints;
using DeepLabTorch.Extensions;
using DeepLabTorch.Models;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Runtime;

/// <summary>
/// Each TorchSharp 0.107 behaviour that differs from PyTorch and touches us, pinned down, with the
/// way our code deals with it.
/// </summary>
public class TorchSharpTrapTests
{
    [Fact]
    public void TensorEqualIsElementwiseAndEqualsIsTheWholeTensorComparison()
    {
        using var a = tensor(new float[] { 1, 2, 3 });
        using var b = tensor(new float[] { 1, 5, 3 });
        using var eq = a.equal(b);
        Assert.Equal(new long[] { 3 }, eq.shape);
        Assert.False(a.Equals(b));
        using var c = a.clone();
        Assert.True(a.Equals(c));
    }

    [Fact]
    public void StateDictInOrderFollowsPyTorchWhereTorchSharpListsParametersFirst()
    {
        using var bn = nn.BatchNorm2d(2);
        using var seq = nn.Sequential(nn.Conv2d(1, 2, 1), bn);
        Assert.Equal(new[] { "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked" },
            seq.StateDictInOrder().Keys);
        // TorchSharp's own order puts both modules' parameters before any buffer.
        Assert.Equal("1.bias", seq.state_dict().Keys.ElementAt(3));
        Assert.Equal("1.running_mean", seq.state_dict().Keys.ElementAt(4));
    }

    [Fact]
    public void LoadStateDictBroadcastsButTheCheckedLoaderNamesTheKey()
    {
        using var bn = nn.BatchNorm2d(5);
        var sd = bn.StateDictInOrder().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        sd["running_mean"] = ones(1);
        var e = Assert.Throws<CheckpointException>(() => StateDictLoader.Load(bn, sd, "bn.safetensors"));
        Assert.Contains("running_mean: file [1] vs model [5]", e.Message);
        Assert.Equal(new float[5], bn.running_mean!.data<float>().ToArray());
        // The trap itself: TorchSharp's load_state_dict takes the one-element tensor without a word.
        bn.load_state_dict(sd);
        Assert.Equal(new float[] { 1, 1, 1, 1, 1 }, bn.running_mean!.data<float>().ToArray());
        sd.Remove("running_mean");
        var e2 = Assert.Throws<CheckpointException>(() => StateDictLoader.Load(bn, sd, "bn.safetensors"));
        Assert.Contains("missing from the file: running_mean", e2.Message);
    }

    [Fact]
    public void ModuleToReplacesParameterObjectsSoTheOptimizerIsBuiltAfterwards()
    {
        using var conv = nn.Conv2d(1, 1, 1);
        var before = conv.weight;
        conv.to(ScalarType.Float64);
        Assert.False(ReferenceEquals(before, conv.weight), "Module.to kept the Parameter object: the trainer's order would not matter");
    }

    [Fact]
    public void ItemNeedsTheExactDtype()
    {
        using var t = ones(2).sum();
        Assert.Throws<ArgumentException>(() => t.item<double>());
        Assert.Equal(2.0, t.ToDouble());
    }

    [Fact]
    public void AParameterMadeInsideADisposeScopeDiesWithIt()
    {
        Parameter lost;
        using (NewDisposeScope())
        {
            lost = new Parameter(ones(2));
        }
        Assert.True(lost.IsInvalid, "a Parameter made inside a scope survived it: the rule to build models outside scopes would be moot");
    }

    /// <summary>NHWC strides make libtorch run the convolutions channels-last; the logits equal the default layout's.</summary>
    [Fact]
    public void ChannelsLastLogitsMatchTheDefaultLayout()
    {
        manual_seed(3);
        using var model = new DeepLabV3Plus(new ModelConfig("mobilenet", 16, 3));
        model.eval();
        using var x = randn(1, 3, 49, 57);
        using var _ = inference_mode();
        using var plain = model.forward(x);
        model.ToChannelsLast();
        Assert.All(model.modules().OfType<Conv2d>(), c => Assert.True(c.weight.IsChannelsLast()));
        using var xl = x.ContiguousChannelsLast();
        Assert.True(xl.IsChannelsLast());
        using var cl = model.forward(xl);
        using var diff = (cl - plain).abs().max();
        using var scale = plain.abs().max();
        // Different kernels sum in a different order: equal within float32 rounding, 1e-5 of the logit scale.
        Assert.True(diff.item<float>() <= 1e-5f * scale.item<float>(), $"channels-last logits differ by {diff.item<float>()} (scale {scale.item<float>()})");
    }
}
