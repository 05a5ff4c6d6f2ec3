using Xunit;
using static DeepLabTorch.Torch.torch;
using F = DeepLabTorch.Torch.torch.nn.functional;

namespace DeepLabTorch.Torch.Tests;

public class ModuleTests
{
    private sealed class SmallNet : nn.Module<Tensor, Tensor>
    {
        private readonly nn.Sequential features;
        private readonly nn.Conv2d classifier;

        public SmallNet(int classes = 3) : base(nameof(SmallNet))
        {
            features = new nn.Sequential(new nn.Conv2d(3, 8, 3, padding: 1, bias: false), new nn.BatchNorm2d(8), new nn.ReLU(true),
                new nn.Conv2d(8, 8, 3, padding: 2, dilation: 2, groups: 2, bias: false), new nn.BatchNorm2d(8), new nn.ReLU6());
            classifier = new nn.Conv2d(8, classes, 1);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var f = features.call(x);
            return classifier.call(f);
        }
    }

    [Fact]
    public void StateDictKeysFollowPyTorchNamingAndOrder()
    {
        using var net = new SmallNet();
        var keys = net.state_dict().Keys.ToArray();
        Assert.Equal(new[]
        {
            "features.0.weight", "features.1.weight", "features.1.bias", "features.1.running_mean", "features.1.running_var",
            "features.1.num_batches_tracked", "features.3.weight", "features.4.weight", "features.4.bias", "features.4.running_mean",
            "features.4.running_var", "features.4.num_batches_tracked", "classifier.weight", "classifier.bias",
        }, keys);
        Assert.Equal(3 * 8 * 9 + 8 + 8 + 8 * 4 * 9 + 8 + 8 + 8 * 3 + 3, net.parameters().Sum(p => p.numel()));
        Assert.Equal(ScalarType.Int64, net.state_dict()["features.1.num_batches_tracked"].dtype);
    }

    [Fact]
    public void StateDictRoundTripGivesTheSameOutputs()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        using var a = new SmallNet();
        using var b = new SmallNet();
        a.train();
        a.call(randn(2, 3, 9, 9)); // moves running stats and num_batches_tracked
        a.eval(); b.eval();
        b.load_state_dict(a.state_dict());
        var x = randn(1, 3, 9, 9);
        Assert.True(a.call(x).equal(b.call(x)));
        Assert.Equal(1, b.state_dict()["features.1.num_batches_tracked"].item<long>());
    }

    [Fact]
    public void LoadStateDictErrorsNameTheOffendingKeys()
    {
        using var a = new SmallNet(3);
        using var b = new SmallNet(5);
        var e = Assert.Throws<ArgumentException>(() => b.load_state_dict(a.state_dict()));
        Assert.Contains("classifier.weight: checkpoint [3, 8, 1, 1] vs model [5, 8, 1, 1]", e.Message);
        Assert.Contains("classifier.bias", e.Message);

        var partial = a.state_dict().Where(kv => kv.Key != "features.0.weight").ToDictionary(kv => kv.Key, kv => kv.Value);
        using var extra = ones(1);
        partial["head.extra"] = extra;
        using var c = new SmallNet(3);
        var e2 = Assert.Throws<ArgumentException>(() => c.load_state_dict(partial));
        Assert.Contains("missing keys: features.0.weight", e2.Message);
        Assert.Contains("unexpected keys: head.extra", e2.Message);
        var (missing, unexpected) = c.load_state_dict(partial, strict: false);
        Assert.Equal(new[] { "features.0.weight" }, missing);
        Assert.Equal(new[] { "head.extra" }, unexpected);
    }

    [Fact]
    public void TrainEvalAndBatchNormBookkeeping()
    {
        using var scope = NewDisposeScope();
        using var bn = new nn.BatchNorm2d(2);
        bn.train();
        bn.call(randn(4, 2, 3, 3));
        bn.call(randn(4, 2, 3, 3));
        Assert.Equal(2, bn.num_batches_tracked!.item<long>());
        var rm = bn.running_mean!.clone();
        bn.eval();
        Assert.False(bn.training);
        bn.call(randn(4, 2, 3, 3));
        Assert.True(bn.running_mean!.equal(rm));
        Assert.Equal(2, bn.num_batches_tracked.item<long>());
    }

    [Fact]
    public void ModuleToConvertsFloatingTensorsOnly()
    {
        using var net = new SmallNet();
        net.to(ScalarType.Float64);
        Assert.All(net.parameters(), p => Assert.Equal(ScalarType.Float64, p.dtype));
        Assert.Equal(ScalarType.Int64, net.state_dict()["features.1.num_batches_tracked"].dtype);
        using var y = net.call(randn(new long[] { 1, 3, 5, 5 }, ScalarType.Float64));
        Assert.Equal(ScalarType.Float64, y.dtype);
        Assert.True(net.parameters().All(p => p.requires_grad && p.is_leaf));
    }

    [Fact]
    public void TrainingStepsInDisposeScopesDoNotLeak()
    {
        manual_seed(6);
        using var net = new SmallNet();
        using var opt = new optim.SGD(net.parameters(), lr: 0.01, momentum: 0.9, weight_decay: 1e-4);
        using var x = randn(2, 3, 8, 8);
        using var y = randint(0, 3, new long[] { 2, 8, 8 });
        double Step()
        {
            using var scope = NewDisposeScope();
            opt.zero_grad();
            var loss = F.cross_entropy(net.call(x), y, ignore_index: 255);
            loss.backward();
            opt.step();
            return loss.item<double>();
        }
        double first = Step(); // creates the momentum buffers
        long live = Tensor.LiveCount;
        double last = 0;
        for (int i = 0; i < 200; i++) last = Step();
        Assert.Equal(live, Tensor.LiveCount);
        Assert.True(last < first, $"loss should fall on a fixed batch: {first} → {last}");
    }
}
