using System.Text.Json;
using DeepLabTorch.Extensions;
using TorchSharp;
using DeepLabTorch.Training;
using Xunit;

namespace DeepLabTorch.Tests.Training;

/// <summary>Losses against PyTorch running the reference formulas (tests/reference/train_losses.py).</summary>
public class LossTests : IDisposable
{
    private readonly string _dir = ReferenceScripts.TempDir("losses");
    private readonly JsonElement _expected;

    public LossTests()
    {
        ReferenceScripts.Run("train_losses.py", _dir);
        _expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "expected.json"))).RootElement;
    }

    public void Dispose() => Directory.Delete(_dir, true);

    private torch.Tensor F32(string name, params long[] shape) => torch.tensor(ReferenceScripts.ReadRaw<float>(Path.Combine(_dir, name)), shape);
    private torch.Tensor I64(string name, params long[] shape) => torch.tensor(ReferenceScripts.ReadRaw<long>(Path.Combine(_dir, name)), shape);
    private double E(string key) => _expected.GetProperty(key).GetDouble();

    [LinuxFact(LinuxOnly.Python)]
    public void CrossEntropyMatchesTheReferenceWithIgnoreWeightsAndBatchAverage()
    {
        using var scope = torch.NewDisposeScope();
        var logits = F32("logits.f32", 2, 3, 4, 5);
        var target = I64("target.i64", 2, 4, 5);
        var weight = F32("weight.f32", 3);
        Assert.Equal(E("ce"), Losses.CrossEntropy(logits, target).item<float>(), 5);
        Assert.Equal(E("ce_no_batch_average"), Losses.CrossEntropy(logits, target, batchAverage: false).item<float>(), 5);
        Assert.Equal(E("ce_weighted"), Losses.CrossEntropy(logits, target, weight).item<float>(), 5);

        var x = logits.clone().requires_grad_();
        Losses.CrossEntropy(x, target, weight).backward();
        var grad = x.grad!.ToArray<float>();
        var want = _expected.GetProperty("ce_weighted_grad").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        Assert.Equal(want.Length, grad.Length);
        for (var i = 0; i < grad.Length; i++) Assert.Equal(want[i], grad[i], 6);
    }

    [LinuxFact(LinuxOnly.Python)]
    public void OhemMatchesTheFaceParsingReferenceInBothBranches()
    {
        using var scope = torch.NewDisposeScope();
        var logits = F32("logits.f32", 2, 3, 4, 5);
        var target = I64("target.i64", 2, 4, 5);
        // 40 pixels: the default keeps at least 40 / 16 = 2; the hard pixels are more than 2 but at most 36.
        var hard = _expected.GetProperty("ohem_hard_count").GetInt32();
        Assert.InRange(hard, 3, 36);
        Assert.Equal(E("ohem"), Losses.Ohem(logits, target).item<float>(), 5);
        Assert.Equal(E("ohem_min_kept_36"), Losses.Ohem(logits, target, 0.7, 36).item<float>(), 5);
        Assert.NotEqual(E("ohem"), E("ohem_min_kept_36"), 3);
        Assert.Equal(E("ohem"), Losses.Build("ohem", null)(logits, target).item<float>(), 5);
        Assert.Throws<UserException>(() => Losses.Ohem(logits, target, 1.5));
    }

    [LinuxFact(LinuxOnly.Python)]
    public void FocalMatchesTheReferenceFormula()
    {
        using var scope = torch.NewDisposeScope();
        var logits = F32("logits.f32", 2, 3, 4, 5);
        var target = I64("target.i64", 2, 4, 5);
        var weight = F32("weight.f32", 3);
        Assert.Equal(E("focal"), Losses.Focal(logits, target).item<float>(), 5);
        Assert.Equal(E("focal_weighted"), Losses.Focal(logits, target, weight).item<float>(), 5);
        Assert.Equal(E("focal_per_pixel"), Losses.Focal(logits, target, perPixel: true).item<float>(), 5);
        // Focal with gamma 0 and alpha 1 is the cross-entropy itself.
        Assert.Equal(Losses.CrossEntropy(logits, target).item<float>(), Losses.Focal(logits, target, gamma: 0, alpha: 1).item<float>(), 6);
    }

    [LinuxFact(LinuxOnly.Python)]
    public void DiceMatchesTheSoftDiceFormula()
    {
        using var scope = torch.NewDisposeScope();
        var logits = F32("binlogits.f32", 2, 2, 4, 5);
        var target = I64("bintarget.i64", 2, 4, 5);
        Assert.Equal(E("dice"), Losses.Dice(logits, target).item<float>(), 5);
        var three = torch.zeros(1, 3, 2, 2);
        Assert.Throws<UserException>(() => Losses.Dice(three, torch.zeros(new long[] { 1, 2, 2 }, torch.int64)));
    }

    [LinuxFact(LinuxOnly.Python)]
    public void BuildRejectsUnknownLossTypes()
    {
        Assert.Throws<UserException>(() => Losses.Build("hinge", null));
        var ce = Losses.Build("ce", null);
        using var scope = torch.NewDisposeScope();
        Assert.Equal(E("ce"), ce(F32("logits.f32", 2, 3, 4, 5), I64("target.i64", 2, 4, 5)).item<float>(), 5);
    }
}
