using System.Globalization;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Extensions;
using DeepLabTorch.Models.FaceParsing;
using DeepLabTorch.Tests.TestSupport;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Models;

/// <summary>
/// STDC1-Seg and STDC2-Seg against an independent PyTorch definition (tests/reference/model_stdc.py): the
/// state_dict layout of the reference's BiSeNet(backbone, 19, use_boundary_8=True), its torch.save'd weights loaded
/// through our .pth importer giving PyTorch's outputs, and the detail-aggregation target and loss.
/// </summary>
// Alone and at the golden's thread count, as ParityTests (a float32 reduction split over another thread count sums in another order).
[Collection(LiveTensorCountCollection.Name)]
public class StdcTests : IClassFixture<StdcTests.Goldens>
{
    private const int Classes = 19;
    private readonly Goldens _goldens;
    private readonly ITestOutputHelper _out;

    public StdcTests(Goldens goldens, ITestOutputHelper output)
    {
        _goldens = goldens;
        _out = output;
    }

    // StdcVariant is internal: the theories take its name (xUnit's test methods are public).
    public static TheoryData<string> Variants() => new() { nameof(StdcVariant.Stdc1), nameof(StdcVariant.Stdc2) };

    [LinuxTheory(LinuxOnly.Python)]
    [MemberData(nameof(Variants))]
    public void StateDictKeysOrderAndShapesArePyTorchs(string variantName)
    {
        var variant = Enum.Parse<StdcVariant>(variantName);
        var golden = _goldens.Get(variant);
        using var model = new StdcSeg(variant, Classes);
        var ours = model.StateDictInOrder().Select(kv => (kv.Key, Shape: kv.Value.shape, DType: DTypeName(kv.Value.dtype))).ToList();
        var theirs = golden.Meta.GetProperty("keys").EnumerateArray()
            .Select(e => (Key: e[0].GetString()!, Shape: e[1].EnumerateArray().Select(v => v.GetInt64()).ToArray(), DType: e[2].GetString()!))
            .ToList();
        for (int i = 0; i < Math.Min(ours.Count, theirs.Count); i++)
        {
            Assert.True(ours[i].Key == theirs[i].Key, $"key {i}: ours {ours[i].Key}, PyTorch's {theirs[i].Key}");
            Assert.True(ours[i].Shape.SequenceEqual(theirs[i].Shape), $"{ours[i].Key}: ours [{string.Join(", ", ours[i].Shape)}], PyTorch's [{string.Join(", ", theirs[i].Shape)}]");
            Assert.True(ours[i].DType == theirs[i].DType, $"{ours[i].Key}: ours {ours[i].DType}, PyTorch's {theirs[i].DType}");
        }
        Assert.Equal(theirs.Count, ours.Count);
        long parameters = model.parameters().Sum(p => p.numel());
        Assert.Equal(golden.Meta.GetProperty("parameters").GetInt64(), parameters);
        _out.WriteLine($"{variant}: {ours.Count} state_dict entries, {parameters} parameters");
    }

    [LinuxTheory(LinuxOnly.Python)]
    [MemberData(nameof(Variants))]
    public void PthLoadedThroughTheImporterGivesPyTorchsOutputs(string variantName)
    {
        var variant = Enum.Parse<StdcVariant>(variantName);
        using var threads = new PinnedThreads(ParityTests.GoldenThreads);
        var golden = _goldens.Get(variant);
        using var model = new StdcSeg(variant, Classes);
        model.eval();
        var sizes = golden.Meta.GetProperty("sizes").EnumerateArray().Select(e => e.GetString()!).ToList();
        Assert.Contains("65x97", sizes);
        double before;
        using (inference_mode())
        using (var fresh = model.forward(golden[sizes[0] + "/input"]))
            before = ParityTests.MaxAbsDiff(fresh, golden[sizes[0] + "/main"]);

        var path = golden.FileInFolder("model.pth");
        var sd = WeightFiles.LoadStateDict(path, out _);
        try
        {
            var report = StateDictLoader.Load(model, sd, path);
            Assert.Empty(report.Notes);
        }
        finally
        {
            foreach (var t in sd.Values) t.Dispose();
        }
        Assert.True(before > 0.1, "the comparison would not notice unloaded weights");

        foreach (var size in sizes)
        {
            using var _ = inference_mode();
            var input = golden[size + "/input"];
            using var all = model.ForwardAll(input);
            Assert.Equal(2, all.Auxiliary.Count);
            Assert.Single(all.Detail);
            // float32 kernels round differently in libtorch 2.10 and PyTorch 1.13 (the float64 check below is the
            // exact one): seen up to 2.4e-5 of the scale for the main logits, 5.5e-5 for an auxiliary head.
            Relative(all.Main, golden[size + "/main"], $"{variant} {size} main", 1e-4);
            Relative(all.Auxiliary[0], golden[size + "/aux16"], $"{variant} {size} out16", 2e-4);
            Relative(all.Auxiliary[1], golden[size + "/aux32"], $"{variant} {size} out32", 2e-4);
            Relative(all.Detail[0], golden[size + "/detail8"], $"{variant} {size} detail sp8", 2e-4);
            using (var y = model.forward(input))
                Assert.Equal(0.0, ParityTests.MaxAbsDiff(y, all.Main));
        }

        // float64: free of kernel rounding, so any structural difference shows.
        model.to(ScalarType.Float64);
        try
        {
            foreach (var size in sizes)
            {
                using var _ = inference_mode();
                using var x64 = golden[size + "/input"].to(ScalarType.Float64);
                using var y64 = model.forward(x64);
                var d = ParityTests.MaxAbsDiff(y64, golden[size + "/main64"]);
                _out.WriteLine($"{variant} {size} float64 main: max abs diff {d:G3}");
                Assert.True(d <= 1e-9, $"{variant} {size}: float64 logits differ by {d}");
            }
        }
        finally
        {
            model.to(ScalarType.Float32);
        }

        // BatchNorm folding meets each shared stage twice (features and x2..x32) and the classifier's unused
        // BatchNorm1d state: it folds each BatchNorm once and the logits stay PyTorch's.
        int folded = DeepLabTorch.Models.BatchNormFolding.Fold(model);
        Assert.False(DeepLabTorch.Models.BatchNormFolding.HasActiveBatchNorm(model));
        _out.WriteLine($"{variant}: {folded} BatchNorms folded");
        using (inference_mode())
        using (var y = model.forward(golden["65x97/input"]))
            Relative(y, golden["65x97/main"], $"{variant} 65x97 main, BatchNorms folded", 1e-4);
    }

    /// <summary>Max abs difference over the golden's max abs value (logged), at most limit.</summary>
    private void Relative(Tensor ours, Tensor golden, string what, double limit)
    {
        var diff = ParityTests.MaxAbsDiff(ours, golden);
        using var m = golden.abs().max();
        var scale = m.ToDouble();
        var rel = diff / scale;
        _out.WriteLine($"{what}: max |golden| {scale:G4}, max abs diff {diff:G3} ({rel:G3} of the scale)");
        Assert.True(rel <= limit, $"{what}: max abs diff {diff} > {limit} x {scale}");
    }

    [LinuxFact(LinuxOnly.Python)]
    public void DetailTargetAndLossArePyTorchs()
    {
        var golden = _goldens.Get(StdcVariant.Stdc1);
        var labels = golden["loss/labels"];
        var logits = golden["loss/logits"];
        using (var target = StdcDetailTargets.BoundaryTarget(labels))
        {
            Assert.Equal(golden["loss/target"].shape, target.shape);
            using var wrong = target.ne(golden["loss/target"]).sum();
            using var count = target.sum();
            _out.WriteLine($"boundary pixels {count.ToDouble()} of {target.numel()}, {wrong.ToInt64()} differ from PyTorch's");
            Assert.Equal(0L, wrong.ToInt64());
            Assert.True(count.ToDouble() > 0.05 * target.numel(), "the label map should have boundaries");
        }
        using var x = logits.detach().requires_grad_(true);
        var (bce, dice) = StdcDetailTargets.DetailLoss(x, labels);
        using (bce)
        using (dice)
        {
            double b = bce.ToDouble(), d = dice.ToDouble();
            double gb = golden["loss/bce"].ToDouble(), gd = golden["loss/dice"].ToDouble();
            _out.WriteLine($"bce {b} vs {gb}, dice {d} vs {gd}");
            Assert.True(Math.Abs(b - gb) <= 1e-6 * Math.Max(1, Math.Abs(gb)), $"bce {b} vs PyTorch's {gb}");
            Assert.True(Math.Abs(d - gd) <= 1e-6 * Math.Max(1, Math.Abs(gd)), $"dice {d} vs PyTorch's {gd}");
            using var total = bce + dice;
            total.backward();
            Assert.NotNull(x.grad);
            using var g = x.grad!.abs().sum();
            Assert.True(g.ToDouble() > 0, "the loss has a gradient in the logits");
        }
    }

    [Fact]
    public void TrainModeForwardAllShapes()
    {
        using var model = new StdcSeg(StdcVariant.Stdc1, 5, StdcDetailHeads.Sp2 | StdcDetailHeads.Sp4 | StdcDetailHeads.Sp8);
        model.train();
        using var x = randn(2, 3, 65, 97);
        using (var all = model.ForwardAll(x))
        {
            Assert.Equal(new long[] { 2, 5, 65, 97 }, all.Main.shape);
            Assert.All(all.Auxiliary, a => Assert.Equal(new long[] { 2, 5, 65, 97 }, a.shape));
            Assert.Equal(3, all.Detail.Count);
            Assert.Equal(new long[] { 2, 1, 33, 49 }, all.Detail[0].shape);
            Assert.Equal(new long[] { 2, 1, 17, 25 }, all.Detail[1].shape);
            Assert.Equal(new long[] { 2, 1, 9, 13 }, all.Detail[2].shape);
            using var labels = randint(0, 5, [2, 65, 97], dtype: ScalarType.Int64);
            var (bce, dice) = StdcDetailTargets.DetailLoss(all.Detail[2], labels);
            using (bce)
            using (dice)
            using (var loss = all.Main.mean().Plus(bce).Plus(dice))
                loss.backward();
            var stem = model.parameters().First();
            Assert.NotNull(stem.grad);
        }
        using (var one = randn(1, 3, 64, 64))
            Assert.Throws<ArgumentException>(() => model.ForwardAll(one).Dispose());
        using var released = new StdcSeg(StdcVariant.Stdc1, 5);
        released.train();
        using (var all = released.ForwardAll(x))
        {
            Assert.Single(all.Detail);
            Assert.Equal(new long[] { 2, 1, 9, 13 }, all.Detail[0].shape);
        }
        Assert.Throws<ArgumentException>(() => new StdcSeg(StdcVariant.Stdc1, 5, StdcDetailHeads.Sp2));
    }

    /// <summary>forward, ForwardAll (eval and train) and the detail loss free every temporary (the class runs alone, so the count is ours).</summary>
    [Fact]
    public void ForwardAndLossFreeTheirTemporaries()
    {
        using var model = new StdcSeg(StdcVariant.Stdc1, 3);
        using var x = randn(2, 3, 33, 47);
        using var labels = randint(0, 3, [2, 33, 47], dtype: ScalarType.Int64);
        void Once()
        {
            model.eval();
            using (no_grad())
            {
                using (model.forward(x)) { }
                using (model.ForwardAll(x)) { }
            }
            model.train();
            using var all = model.ForwardAll(x);
            var (bce, dice) = StdcDetailTargets.DetailLoss(all.Detail[0], labels);
            using (bce)
            using (dice)
            using (var sum = bce.Plus(dice))
                sum.backward();
        }
        Once();
        Settle();
        long before = Tensor.TotalCount;
        Once();
        Settle();
        Assert.Equal(before, Tensor.TotalCount);
    }

    private static void Settle()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    private static string DTypeName(ScalarType t) => t switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.Int64 => "int64",
        _ => t.ToString(),
    };

    /// <summary>The goldens of both variants, made once for the class by tests/reference/model_stdc.py and deleted after.</summary>
    public sealed class Goldens : IDisposable
    {
        private readonly Dictionary<StdcVariant, ReferenceGolden> _made = new();
        private readonly object _lock = new();

        internal ReferenceGolden Get(StdcVariant variant)
        {
            lock (_lock)
            {
                if (!_made.TryGetValue(variant, out var g))
                    _made[variant] = g = ReferenceGolden.GenerateFrom("model_stdc.py", "--variant", variant == StdcVariant.Stdc1 ? "stdc1" : "stdc2",
                        "--threads", ParityTests.GoldenThreads.ToString(CultureInfo.InvariantCulture));
                return g;
            }
        }

        public void Dispose()
        {
            foreach (var g in _made.Values) g.Dispose();
            _made.Clear();
        }
    }
}
