using DeepLabTorch.Checkpoints;
using DeepLabTorch.Models;
using DeepLabTorch.Models.Backbones;
using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DeepLabTorch.Tests.Models;

/// <summary>Training details (parameter groups, freeze-BN, init), reference loading and error paths.</summary>
[Collection("Models")]
public class ModelBehaviourTests
{
    private static DeepLabV3Plus Small(int classes = 3, int outputStride = 16) =>
        ModelFactory.Create(new ModelConfig("mobilenet", outputStride, classes));

    [Fact]
    public void ParameterGroupsSplitBackboneFromHeadAtTenTimesTheRate()
    {
        using var model = Small();
        var backbone = model.BackboneParameters().ToList();
        var head = model.HeadParameters().ToList();
        var all = model.parameters().ToList();
        Assert.Equal(all.Count, backbone.Count + head.Count);
        Assert.Empty(backbone.Intersect(head, ReferenceEqualityComparer.Instance));
        // In state_dict order: backbone first, then ASPP, then decoder (the classifier last).
        Assert.True(all.SequenceEqual(backbone.Concat(head), ReferenceEqualityComparer.Instance));
        var named = model.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        Assert.Same(named[model.ClassifierPrefix + ".weight"], head[^2]);
        Assert.Same(named[model.ClassifierPrefix + ".bias"], head[^1]);
        Assert.All(backbone, p => Assert.Contains(named, kv => ReferenceEquals(kv.Value, p) && kv.Key.StartsWith("backbone.", StringComparison.Ordinal)));

        var groups = model.ParameterGroups();
        Assert.Equal(2, groups.Count);
        Assert.Equal(1.0, groups[0].LearningRateMultiplier);
        Assert.Equal(10.0, groups[1].LearningRateMultiplier);
        Assert.Equal(backbone.Count, groups[0].Parameters.Count);
        Assert.Equal(head.Count, groups[1].Parameters.Count);
        using var sgd = DeepLabTorch.Training.SgdFactory.Create(model, 0.007, 0.9, 5e-4);
        var rates = sgd.ParamGroups.Select(g => g.LearningRate).ToArray();
        Assert.Equal(0.007, rates[0], 12);
        Assert.Equal(0.07, rates[1], 12);
    }

    /// <summary>
    /// TorchSharp trap: new SGD.ParamGroup(params, lr) silently zeroes that group's momentum and weight
    /// decay. After one step with SgdFactory's groups, every parameter of both groups has a momentum buffer.
    /// </summary>
    [Fact]
    public void BothSgdGroupsKeepMomentumAfterAStep()
    {
        using var model = Small();
        using var sgd = DeepLabTorch.Training.SgdFactory.Create(model, 0.01, 0.9, 1e-4);
        using (var scope = NewDisposeScope())
        {
            using var x = randn(2, 3, 33, 33);
            model.forward(x).mean().backward();
            sgd.step();
        }
        var (tensors, _) = DeepLabTorch.Checkpoints.OptimizerState.Save(sgd);
        int count = model.parameters().Count();
        Assert.Equal(count, tensors.Count);
        Assert.All(Enumerable.Range(0, count), i => Assert.True(tensors.ContainsKey($"state.{i}.momentum_buffer"), $"parameter {i} has no momentum buffer"));
        Assert.All(sgd.ParamGroups.Cast<TorchSharp.Modules.SGD.ParamGroup>(), g =>
        {
            Assert.Equal(0.9, g.Options.momentum);
            Assert.Equal(1e-4, g.Options.weight_decay);
        });
        model.zero_grad();
    }

    [Fact]
    public void FreezeBatchNormKeepsRunningStatisticsDuringATrainStep()
    {
        using var model = Small();
        model.FreezeBatchNorm = true;
        model.train();
        var bns = model.modules().OfType<DeepLabTorch.Models.BatchNorm2d>().ToList();
        Assert.Equal(model.StateDictInOrder().Keys.Count(k => k.EndsWith(".running_mean", StringComparison.Ordinal)), bns.Count);
        Assert.All(bns, bn => Assert.False(bn.training));
        Assert.All(model.modules().OfType<Dropout>(), d => Assert.True(d.training));
        Assert.True(model.training);

        var buffers = model.named_buffers().ToDictionary(b => b.name, b => b.buffer.clone().DetachFromDisposeScope());
        var weights = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.clone().DetachFromDisposeScope());
        try
        {
            using var opt = DeepLabTorch.Training.SgdFactory.Create(model, 0.01, momentum: 0.9, weightDecay: 0);
            using (var scope = NewDisposeScope())
            {
                // A batch of one is allowed: frozen BatchNorm does not need batch statistics.
                var x = randn(1, 3, 33, 41);
                var target = randint(0, 3, new long[] { 1, 33, 41 });
                var loss = F.cross_entropy(model.forward(x), target);
                loss.backward();
                opt.step();
            }
            foreach (var (name, b) in model.named_buffers())
                Assert.True(b.Equals(buffers[name]), $"{name} changed although BatchNorm is frozen");
            int changed = model.named_parameters().Count(p => !p.parameter.Equals(weights[p.name]));
            Assert.True(changed > 100, $"only {changed} parameters changed: the step did not train");

            // Unfreezing while training puts BatchNorm back in training mode, and its stats move.
            model.FreezeBatchNorm = false;
            Assert.All(bns, bn => Assert.True(bn.training));
            using (var scope = NewDisposeScope())
            using (no_grad())
                model.forward(randn(2, 3, 33, 41));
            Assert.Contains(model.named_buffers(), b => !b.buffer.Equals(buffers[b.name]));

            // eval() and train() again: the flag survives mode changes.
            model.FreezeBatchNorm = true;
            model.eval();
            model.train();
            Assert.All(bns, bn => Assert.False(bn.training));
        }
        finally
        {
            foreach (var t in buffers.Values.Concat(weights.Values)) t.Dispose();
        }
    }

    [Fact]
    public void InitialisationIsKaimingNormalWithUnitBatchNorm()
    {
        using var model = Small(21);
        var p = model.named_parameters().ToDictionary(x => x.name, x => (Tensor)x.parameter);
        // He normal with fan-in in MobileNetV2, ASPP and decoder (the reference's choices).
        AssertStd(p["aspp.conv1.weight"], Math.Sqrt(2.0 / 1280));
        AssertStd(p["decoder.last_conv.4.weight"], Math.Sqrt(2.0 / (256 * 9)));
        AssertStd(p["backbone.features.17.conv.6.weight"], Math.Sqrt(2.0 / 960));
        using var scope = NewDisposeScope();
        var bns = model.modules().OfType<DeepLabTorch.Models.BatchNorm2d>().ToList();
        Assert.Equal(model.StateDictInOrder().Keys.Count(k => k.EndsWith(".running_var", StringComparison.Ordinal)), bns.Count);
        foreach (var bn in bns)
        {
            Assert.True(bn.weight!.eq(1.0).all().item<bool>(), "BatchNorm weight is not 1");
            Assert.True(bn.bias!.eq(0.0).all().item<bool>(), "BatchNorm bias is not 0");
        }

        // Xception (and ResNet) use fan-out, as their reference does: N(0, sqrt(2 / (k·k·out))).
        using var xception = new AlignedXception(16);
        var xp = xception.named_parameters().ToDictionary(x => x.name, x => (Tensor)x.parameter);
        AssertStd(xp["block5.rep.1.pointwise.weight"], Math.Sqrt(2.0 / 728));
        AssertStd(xp["conv5.conv1.weight"], Math.Sqrt(2.0 / (1536 * 9)));
    }

    private static void AssertStd(Tensor w, double expected)
    {
        using var scope = NewDisposeScope();
        var mean = w.mean().item<float>();
        var std = w.to(ScalarType.Float64).square().mean().sqrt().ToDouble();
        Assert.True(Math.Abs(mean) < 0.05 * expected, $"mean {mean} is not ~0 (std {expected})");
        Assert.True(Math.Abs(std / expected - 1) < 0.05, $"std {std} is not {expected}");
    }

    [Fact]
    public void LoadsReferenceWeightsUnderAliasNamesOnly()
    {
        using var source = Small();
        using (no_grad())
            foreach (var b in source.buffers()) if (b.dtype == ScalarType.Float32) nn.init.uniform_(b, 0.5, 1.5);
        var full = source.ReferenceStateDict();
        var aliases = ModelCatalog.Get("mobilenet").AliasMap;
        // Keep the alias keys and drop their canonical twins, and drop every num_batches_tracked (old PyTorch files lack them).
        var canonicalOfAlias = aliases.Values.ToHashSet();
        var aliasOnly = full.Where(kv => !canonicalOfAlias.Contains(kv.Key) && !kv.Key.EndsWith("num_batches_tracked", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Contains("backbone.high_level_features.17.conv.6.weight", aliasOnly.Keys);
        Assert.DoesNotContain("backbone.features.17.conv.6.weight", aliasOnly.Keys);

        using var target = Small();
        target.LoadReferenceStateDict(aliasOnly);
        foreach (var (k, t) in target.StateDictInOrder())
        {
            if (k.EndsWith("num_batches_tracked", StringComparison.Ordinal)) Assert.Equal(0L, t.item<long>());
            else Assert.True(t.Equals(source.StateDictInOrder()[k]), $"{k} was not loaded");
        }
    }

    [Fact]
    public void LoadingWeightsOfAnotherShapeOrWithStrayKeysFailsClearly()
    {
        using var model21 = Small(21);
        using var model3 = Small(3);
        var e = Assert.Throws<CheckpointException>(() => model3.LoadReferenceStateDict(model21.StateDictInOrder()));
        Assert.Contains(model3.ClassifierPrefix + ".weight", e.Message);
        Assert.Contains("3 classes", e.Message);

        var sd = model3.StateDictInOrder();
        using var stray = zeros(1);
        sd["backbone.extra.weight"] = stray;
        var e2 = Assert.Throws<CheckpointException>(() => model3.LoadReferenceStateDict(sd));
        Assert.Contains("backbone.extra.weight", e2.Message);
        model3.LoadReferenceStateDict(sd, strict: false);

        // A partial, non-strict load leaves the BatchNorms it does not mention alone (counters included).
        using (no_grad()) foreach (var b in model3.buffers()) if (b.dtype == ScalarType.Int64) b.fill_(7);
        var asppOnly = model21.StateDictInOrder().Where(kv => kv.Key.StartsWith("aspp.", StringComparison.Ordinal) &&
            !kv.Key.EndsWith("num_batches_tracked", StringComparison.Ordinal)).ToDictionary(kv => kv.Key, kv => kv.Value);
        model3.LoadReferenceStateDict(asppOnly, strict: false);
        foreach (var (k, t) in model3.StateDictInOrder().Where(kv => kv.Key.EndsWith("num_batches_tracked", StringComparison.Ordinal)))
            Assert.Equal(k.StartsWith("aspp.", StringComparison.Ordinal) ? 0L : 7L, t.item<long>());

        var missing = model3.StateDictInOrder();
        missing.Remove("aspp.conv1.weight");
        var e3 = Assert.Throws<CheckpointException>(() => model3.LoadReferenceStateDict(missing));
        Assert.Contains("aspp.conv1.weight", e3.Message);
    }

    [Fact]
    public void FineTuningKeepsTheClassifierOfTheNewClassCount()
    {
        using var source = Small(21);
        using var target = Small(2);
        using var before = target.Decoder.Classifier.weight.clone();
        target.LoadReferenceStateDict(source.ReferenceStateDict(), strict: true, keepClassifier: true);
        Assert.True(target.Decoder.Classifier.weight.Equals(before));
        var src = source.StateDictInOrder();
        foreach (var (k, t) in target.StateDictInOrder())
            if (!k.StartsWith(target.ClassifierPrefix + ".", StringComparison.Ordinal))
                Assert.True(t.Equals(src[k]), $"{k} was not loaded");
    }

    [Fact]
    public void BadConfigurationsAndInputsAreClearErrors()
    {
        Assert.Contains("backbone", Assert.Throws<UserException>(() => ModelFactory.Create(new ModelConfig("vgg"))).Message);
        Assert.Contains("output stride", Assert.Throws<UserException>(() => ModelFactory.Create(new ModelConfig("mobilenet", 32))).Message);
        Assert.Contains("classes", Assert.Throws<UserException>(() => ModelFactory.Create(new ModelConfig("mobilenet", 16, 0))).Message);
        Assert.Throws<UserException>(() => ModelCatalog.Get("vgg").AliasMap);

        using var model = Small();
        model.eval();
        using var scope = NewDisposeScope();
        Assert.Contains("4-D", Assert.Throws<ArgumentException>(() => model.forward(randn(3, 33, 33))).Message);
        Assert.Contains("3 input channels", Assert.Throws<ArgumentException>(() => model.forward(randn(1, 1, 33, 33))).Message);
        Assert.Contains("floating-point", Assert.Throws<ArgumentException>(() => model.forward(zeros(new long[] { 1, 3, 33, 33 }, ScalarType.Int64))).Message);
        model.train();
        Assert.Contains("at least 2", Assert.Throws<ArgumentException>(() => model.forward(randn(1, 3, 33, 33))).Message);
    }

    [Fact]
    public void ForwardAndBackwardFreeEveryIntermediateHandle()
    {
        using var model = Small();
        using var x = randn(2, 3, 33, 41);
        model.eval();
        using (var scope = NewDisposeScope())
        {
            using (inference_mode())
            {
                var y = model.forward(x);
                Assert.Equal(1, scope.DisposablesCount);
                y.Dispose();
            }
            Assert.Equal(0, scope.DisposablesCount);
        }
        model.train();
        using (var scope = NewDisposeScope())
        {
            var y = model.forward(x);
            Assert.Equal(1, scope.DisposablesCount);
            var loss = y.mean();
            loss.backward();
            loss.Dispose();
            y.Dispose();
            Assert.Equal(0, scope.DisposablesCount);
        }
        model.zero_grad();
    }

    [Fact]
    public void ChannelsLastGivesTheSameLogits()
    {
        using var model = Small();
        model.eval();
        using var scope = NewDisposeScope();
        var x = randn(1, 3, 45, 61);
        Tensor expected;
        using (inference_mode()) expected = model.forward(x);
        model.ToChannelsLast();
        var w3 = model.named_parameters().First(p => p.name == "decoder.last_conv.4.weight").parameter;
        Assert.True(w3.IsChannelsLast() && !w3.is_contiguous());
        using (inference_mode())
        {
            var y = model.forward(x.ContiguousChannelsLast());
            Assert.True(ParityTests.MaxAbsDiff(y, expected) <= 1e-4, "channels-last logits differ");
            // The layout survives every stage: ASPP's image-pooling branch is expanded (no layout of its own),
            // and before it was laid out, ASPP and the decoder ran in NCHW with reorders (docs/performance.md).
            using var features = model.Backbone.forward(x.ContiguousChannelsLast());
            Assert.True(features.Output.IsChannelsLast() && features.LowLevel.IsChannelsLast(), "backbone features are not channels-last");
            var context = model.Aspp.forward(features.Output);
            Assert.True(context.IsChannelsLast(), "ASPP gave [" + string.Join(",", context.stride()) + "] strides, not channels-last");
            Assert.True(model.Decoder.forward(context, features.LowLevel).IsChannelsLast(), "the decoder's logits are not channels-last");
            Assert.True(y.IsChannelsLast(), "the upsampled logits are not channels-last");
        }
    }

    [Fact]
    public void AlignCornersIsAModelOption()
    {
        using var aligned = Small();
        using var plain = ModelFactory.Create(new ModelConfig("mobilenet", 16, 3, AlignCorners: false));
        plain.load_state_dict(aligned.StateDictInOrder());
        aligned.eval();
        plain.eval();
        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        var x = randn(1, 3, 33, 41);
        Assert.False(aligned.forward(x).allclose(plain.forward(x), 1e-3, 1e-3));
    }
}
