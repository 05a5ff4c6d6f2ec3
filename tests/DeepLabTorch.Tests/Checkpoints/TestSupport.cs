using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Checkpoints;

/// <summary>Mirrors TinyNet in tests/reference/ckpt_tiny.py: a "backbone + classifier" with the same keys.</summary>
internal sealed class TinyNet : nn.Module<Tensor, Tensor>
{
    public readonly Sequential backbone;
    public readonly Conv2d classifier;

    public TinyNet(int classes = 5) : base(nameof(TinyNet))
    {
        backbone = nn.Sequential(nn.Conv2d(3, 4, 3, padding: 1, bias: false), nn.BatchNorm2d(4), nn.ReLU());
        classifier = nn.Conv2d(4, classes, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var f = backbone.forward(x);
        return classifier.forward(f);
    }
}

/// <summary>The .pth files of tests/reference/ckpt_make_pth.py, generated once per test run.</summary>
public sealed class PthFixture : IDisposable
{
    private readonly TempDir _dir = new();

    public PthFixture()
    {
        Python.Run("ckpt_make_pth.py", _dir.Path);
    }

    public string this[string name] => _dir[name];
    public void Dispose() => _dir.Dispose();
}
