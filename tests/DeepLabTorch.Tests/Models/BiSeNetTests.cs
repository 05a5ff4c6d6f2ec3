using System.Globalization;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Extensions;
using DeepLabTorch.Models;
using DeepLabTorch.Models.FaceParsing;
using DeepLabTorch.Tests.TestSupport;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Models;

/// <summary>
/// BiSeNet (face parsing) against an independent PyTorch BiSeNet (tests/reference/model_bisenet.py): the state_dict
/// layout of the face-parsing release, and eval-mode outputs from weights saved by torch.save and read by our .pth importer.
/// </summary>
// As ParityTests: alone, after the parallel tests, at the golden's thread count.
[Collection(LiveTensorCountCollection.Name)]
public class BiSeNetTests
{
    private const string Script = "model_bisenet.py";
    private const int FaceClasses = 19;

    private readonly ITestOutputHelper _out;
    public BiSeNetTests(ITestOutputHelper output) { _out = output; }

    private static string S(long v) => v.ToString(CultureInfo.InvariantCulture);

    [LinuxFact(LinuxOnly.Python)]
    public void StateDictKeysOrderAndShapesAreThoseOfPyTorch()
    {
        var stdout = ReferenceGolden.RunPython(ReferenceGolden.ScriptPath(Script), "--mode", "keys", "--classes", S(FaceClasses));
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var expected = lines.Where(l => !l.StartsWith('#')).Select(l => l.Split('\t')).ToList();
        long pytorchParameters = long.Parse(lines.Single(l => l.StartsWith("# parameters:", StringComparison.Ordinal))["# parameters:".Length..],
            CultureInfo.InvariantCulture);

        using var model = new BiSeNet(FaceClasses);
        var ours = model.StateDictInOrder()
            .Select(kv => new[] { kv.Key, "[" + string.Join(", ", kv.Value.shape) + "]", kv.Value.dtype == ScalarType.Int64 ? "int64" : kv.Value.dtype == ScalarType.Float32 ? "float32" : kv.Value.dtype.ToString() })
            .ToList();
        Assert.Equal(expected.Select(e => string.Join('\t', e)), ours.Select(e => string.Join('\t', e)));
        Assert.Equal(191, ours.Count);
        // The face-parsing release's layout, spot-checked by name.
        Assert.Equal("cp.resnet.conv1.weight", ours[0][0]);
        Assert.Contains(ours, e => e[0] == "cp.resnet.layer4.0.downsample.1.running_var" && e[1] == "[512]");
        Assert.Contains(ours, e => e[0] == "cp.arm16.conv.conv.weight" && e[1] == "[128, 256, 3, 3]");
        Assert.Contains(ours, e => e[0] == "ffm.convblk.conv.weight" && e[1] == "[256, 256, 1, 1]");
        Assert.Equal(new[] { "conv_out32.conv_out.weight", "[19, 64, 1, 1]", "float32" }, ours[^1]);

        long parameters = model.parameters().Sum(p => p.numel());
        _out.WriteLine($"{ours.Count} state_dict entries, {parameters} parameters");
        Assert.Equal(pytorchParameters, parameters);
        Assert.Equal(13_300_416, parameters);
    }

    /// <summary>
    /// A reference .pth with no metadata goes through ModelLoader as predict and eval take it: the keys say
    /// bisenet, the main classifier's shape the class count, and the loaded network gives PyTorch's logits.
    /// </summary>
    [LinuxFact(LinuxOnly.Python)]
    public void TheModelLoaderRecognisesAReferencePth()
    {
        using var threads = new PinnedThreads(ParityTests.GoldenThreads);
        using var golden = ReferenceGolden.GenerateFrom(Script, "--classes", S(FaceClasses), "--height", "64", "--width", "64",
            "--threads", S(ParityTests.GoldenThreads));
        using var loaded = ModelLoader.Load(golden.FileInFolder("model.pth"));
        Assert.IsType<BiSeNet>(loaded.Model);
        Assert.Equal(("bisenet", FaceClasses), (loaded.Model.Config.Backbone, loaded.Model.Config.NumClasses));
        loaded.Model.eval();
        using (inference_mode())
        using (var y = loaded.Model.forward(golden["input"]))
            AssertClose(y, golden["logits"], "ModelLoader 64x64", 1e-4);
    }

    /// <summary>
    /// The weights of a torch.save'd state_dict, read by WeightFiles and loaded strictly by StateDictLoader, give
    /// PyTorch's eval-mode outputs (main and both auxiliary heads) at a size that is a multiple of 32 and one that is
    /// not (the nearest upsampling between context stages then repeats rows and columns unevenly).
    /// </summary>
    [LinuxTheory(LinuxOnly.Python)]
    [InlineData(64, 64)]
    [InlineData(65, 97)]
    public void EvalOutputsFromPthMatchPyTorch(int height, int width)
    {
        using var threads = new PinnedThreads(ParityTests.GoldenThreads);
        using var golden = ReferenceGolden.GenerateFrom(Script, "--classes", S(FaceClasses), "--height", S(height), "--width", S(width),
            "--threads", S(ParityTests.GoldenThreads));
        using var model = new BiSeNet(FaceClasses);
        model.eval();
        var input = golden["input"];
        double before;
        using (inference_mode())
        using (var fresh = model.forward(input))
            before = ParityTests.MaxAbsDiff(fresh, golden["logits"]);

        var pth = golden.FileInFolder("model.pth");
        Assert.Equal(WeightFiles.Kind.PyTorchZip, WeightFiles.Detect(pth));
        var sd = WeightFiles.LoadStateDict(pth, out _);
        try
        {
            var report = StateDictLoader.Load(model, sd, pth);
            Assert.Equal(191, report.Loaded.Count);
            Assert.Empty(report.Notes);
        }
        finally
        {
            foreach (var t in sd.Values) t.Dispose();
        }
        Assert.Equal(golden.Meta.GetProperty("parameters").GetInt64(), model.parameters().Sum(p => p.numel()));

        string what = $"{height}x{width}";
        using (inference_mode())
        {
            using (var y = model.forward(input))
            {
                Assert.Equal(new long[] { 1, FaceClasses, height, width }, y.shape);
                AssertClose(y, golden["logits"], $"{what} forward", 1e-4);
            }
            using var all = model.ForwardAll(input);
            Assert.Empty(all.Detail);
            Assert.Equal(2, all.Auxiliary.Count);
            AssertClose(all.Main, golden["logits"], $"{what} main", 1e-4);
            AssertClose(all.Auxiliary[0], golden["aux16"], $"{what} aux16", 1e-4);
            AssertClose(all.Auxiliary[1], golden["aux32"], $"{what} aux32", 1e-4);
        }
        Assert.True(before > 0.1, "the comparison would not notice unloaded weights");

        // float64 on both sides: no kernel rounding to hide a structural difference.
        model.to(ScalarType.Float64);
        using (inference_mode())
        using (var x64 = input.to(ScalarType.Float64))
        using (var all64 = model.ForwardAll(x64))
        {
            AssertClose(all64.Main, golden["logits64"], $"{what} float64 main", 1e-9);
            AssertClose(all64.Auxiliary[0], golden["aux16_64"], $"{what} float64 aux16", 1e-9);
            AssertClose(all64.Auxiliary[1], golden["aux32_64"], $"{what} float64 aux32", 1e-9);
        }
    }

    /// <summary>Max abs difference within tolerance × the golden's max |value|.</summary>
    private void AssertClose(Tensor actual, Tensor expected, string what, double tolerance)
    {
        var diff = ParityTests.MaxAbsDiff(actual, expected);
        double scale;
        using (var m = expected.abs().max()) scale = m.to(ScalarType.Float64).item<double>();
        _out.WriteLine($"{what}: max |golden| {scale:G4}, max abs diff {diff:G3} ({diff / scale:G3} of the scale)");
        Assert.True(diff <= tolerance * scale, $"{what}: max abs diff {diff} > {tolerance} x {scale}");
    }

    [Fact]
    public void TrainModeForwardAllGivesEveryOutputAtTheInputSize()
    {
        using var threads = new PinnedThreads(ParityTests.GoldenThreads);
        using var model = new BiSeNet(5);
        model.train();
        using var x = randn(2, 3, 65, 97);
        using (var scope = NewDisposeScope())
        {
            var all = model.ForwardAll(x);
            Assert.Equal(new long[] { 2, 5, 65, 97 }, all.Main.shape);
            Assert.Equal(2, all.Auxiliary.Count);
            Assert.All(all.Auxiliary, a => Assert.Equal(new long[] { 2, 5, 65, 97 }, a.shape));
            Assert.Empty(all.Detail);
            var loss = all.Main.square().mean().add(all.Auxiliary[0].square().mean(), HeldScalars.One)
                .add(all.Auxiliary[1].square().mean(), HeldScalars.One);
            loss.backward();
        }
        foreach (var (name, p) in model.named_parameters())
        {
            using var g = p.grad;
            Assert.True(g is not null, $"{name} got no gradient");
            using var norm = g.abs().sum();
            Assert.True(norm.item<float>() > 0, $"{name} got a zero gradient");
        }
        Assert.All(model.StateDictInOrder().Where(kv => kv.Key.EndsWith(".num_batches_tracked", StringComparison.Ordinal)),
            kv => Assert.Equal(1L, kv.Value.item<long>()));

        // One image per batch would normalise the global-context BatchNorms over a single value.
        using var one = randn(1, 3, 64, 64);
        Assert.Throws<ArgumentException>(() => model.forward(one));
        Assert.Throws<ArgumentException>(() => model.ForwardAll(one));

        // Eval: forward is ForwardAll's main output.
        model.eval();
        using (inference_mode())
        using (var y = model.forward(one))
        using (var all = model.ForwardAll(one))
        {
            Assert.Equal(new long[] { 1, 5, 64, 64 }, y.shape);
            Assert.Equal(0.0, ParityTests.MaxAbsDiff(y, all.Main));
        }
    }

    /// <summary>Every temporary handle of forward and ForwardAll is disposed, none left to the finalizer (eval, and train with a backward).</summary>
    [Fact]
    public void ForwardsFreeTheirTemporaries()
    {
        using var threads = new PinnedThreads(ParityTests.GoldenThreads);
        using var model = new BiSeNet(3);
        using var x = randn(2, 3, 47, 33);
        void Eval()
        {
            model.eval();
            using var _ = inference_mode();
            using (model.forward(x)) { }
            using (model.ForwardAll(x)) { }
        }
        void Train()
        {
            model.train();
            using var all = model.ForwardAll(x);
            using var loss = all.Main.mean();
            loss.backward();
            model.zero_grad();
        }
        foreach (var (mode, run) in new (string, Action)[] { ("eval", Eval), ("train", Train) })
        {
            run();
            Settle();
            long before = Tensor.TotalCount;
            run();
            // No collection here: a handle left to the finalizer counts as a leak.
            long after = Tensor.TotalCount;
            Assert.True(after <= before, $"{after - before} tensor handles left undisposed in {mode} mode");
        }
    }

    private static void Settle()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }
}
