using System.Globalization;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Config;
using DeepLabTorch.Data;
using DeepLabTorch.Extensions;
using DeepLabTorch.Models;
using DeepLabTorch.Tests.Models;
using DeepLabTorch.Training;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DeepLabTorch.Tests.Training;

/// <summary>
/// train --precision bf16: bfloat16 compute over float32 master weights. The golden is PyTorch's
/// (tests/reference/model_deeplab.py --mode grads): one step's gradients in float64, float32 and under
/// PyTorch's own CPU autocast to bfloat16, on the same weights, input and target.
/// </summary>
[Collection(LiveTensorCountCollection.Name)]
public sealed class MixedPrecisionTests
{
    private readonly ITestOutputHelper _out;
    public MixedPrecisionTests(ITestOutputHelper output) { _out = output; }

    private static ReferenceGolden Golden() => ReferenceGolden.Generate("--mode", "grads", "--backbone", "mobilenet", "--os", "16", "--classes", "5",
        "--height", "49", "--width", "65", "--batch", "2");

    private static DeepLabV3Plus ModelFrom(ReferenceGolden golden, bool freezeBatchNorm)
    {
        var model = ModelFactory.Create(new ModelConfig("mobilenet", 16, 5));
        model.LoadReferenceStateDict(golden.WithPrefix("state/"));
        ParityTests.DisableDropout(model);
        model.FreezeBatchNorm = freezeBatchNorm;
        model.train();
        return model;
    }

    /// <summary>Every gradient, in named_parameters order, as one float64 vector; also checks they are float32.</summary>
    private static Tensor Flat(DeepLabV3Plus model)
    {
        var parts = new List<Tensor>();
        foreach (var (name, p) in model.named_parameters())
        {
            Assert.True(p.dtype == ScalarType.Float32, $"{name} is {p.dtype}: master weights must stay float32");
            Assert.True(p.grad is not null, $"{name} got no gradient");
            Assert.True(p.grad!.dtype == ScalarType.Float32, $"{name}'s gradient is {p.grad.dtype}");
            parts.Add(p.grad.to(ScalarType.Float64).flatten());
        }
        return cat(parts, 0);
    }

    private static Tensor FlatGolden(ReferenceGolden golden, DeepLabV3Plus model, string prefix) =>
        cat(model.named_parameters().Select(p => golden[prefix + p.name].to(ScalarType.Float64).flatten()).ToList(), 0);

    private static double RelErr(Tensor a, Tensor reference) => ((a - reference).norm() / reference.norm()).ToDouble();

    /// <summary>
    /// The gradients of a bf16 step reach the float32 masters and agree with float64's as closely as PyTorch's
    /// own bf16 autocast does. BatchNorm runs on its running statistics here: with batch statistics a random
    /// network at this tiny crop is so ill-conditioned that float32 gradients already stray ~2% from float64
    /// and bf16 ones (PyTorch's too) by more than their own size, which would test nothing.
    /// </summary>
    [LinuxTheory(LinuxOnly.Python)]
    [InlineData(true)]
    [InlineData(false)]
    public void Bf16StepGradientsMatchFloat64AsPyTorchAutocastDoes(bool channelsLast)
    {
        using var golden = Golden();
        using var model = ModelFrom(golden, freezeBatchNorm: true);
        using var scope = NewDisposeScope();
        var input = golden["input"];
        var target = golden["target"];
        var meta = golden.Meta;
        double loss64 = meta.GetProperty("loss64").GetDouble(), pyErr = meta.GetProperty("grad_rel_err_autocast_bf16").GetDouble();

        // Our float32 path first: it pins the golden's alignment (same weights, same network) to float32 rounding.
        var f32 = MixedPrecision.Float32;
        model.zero_grad();
        var loss32 = F.cross_entropy(MixedPrecision.Logits(model.forward(f32.Input(input))), target, ignore_index: 255);
        loss32.backward();
        var reference = FlatGolden(golden, model, "grad64/");
        var err32 = RelErr(Flat(model), reference);

        var mp = MixedPrecision.BFloat16(channelsLast);
        mp.Prepare(model);
        model.zero_grad();
        var x = mp.Input(input);
        Assert.Equal(ScalarType.BFloat16, x.dtype);
        Assert.Equal(channelsLast, x.IsChannelsLast());
        var output = model.forward(x);
        Assert.Equal(ScalarType.BFloat16, output.dtype);
        var logits = MixedPrecision.Logits(output);
        Assert.Equal(ScalarType.Float32, logits.dtype);
        var loss = F.cross_entropy(logits, target, ignore_index: 255);
        loss.backward();
        var err16 = RelErr(Flat(model), reference);
        var lossDiff = Math.Abs(loss.item<float>() - loss64);
        _out.WriteLine(FormattableString.Invariant(
            $"loss float64 {loss64:G6}, ours float32 {loss32.item<float>():G6}, ours bf16 {loss.item<float>():G6}; gradient error vs float64: ours float32 {err32:G3}, ours bf16 {err16:G3}, PyTorch autocast bf16 {pyErr:G3}"));

        Assert.True(err32 < 1e-4, $"float32 gradients differ from PyTorch's float64 by {err32}: the golden does not describe this network");
        Assert.True(Math.Abs(loss32.item<float>() - loss64) < 1e-5 * loss64, "float32 loss differs from float64");
        // A bf16 step that secretly ran in float32 would be as close as float32 is.
        Assert.True(err16 > 100 * err32, $"bf16 gradients are as close as float32's ({err16} vs {err32}): the step did not compute in bfloat16");
        // bfloat16 keeps 8 significant bits (relative rounding 2^-9 ≈ 0.002 per operation), compounded over ~50
        // layers; PyTorch's autocast lands at pyErr (~0.07). Ours may differ in where it rounds, not by more than 2×.
        Assert.True(err16 < 2 * pyErr + 0.01, $"bf16 gradients differ from float64 by {err16}, PyTorch's autocast by {pyErr}");
        Assert.True(lossDiff < 0.01 * loss64, $"bf16 loss {loss.item<float>()} vs float64 {loss64}");
    }

    /// <summary>
    /// In train mode BatchNorm takes a bfloat16 input with float32 parameters and statistics: the running
    /// statistics after one forward stay float32 and land where float64's do as closely as under PyTorch's
    /// autocast. From fresh statistics (mean 0, variance 1) and momentum 0.1 one forward leaves 0.1·mean and
    /// 0.9 + 0.1·variance of each channel's batch; the mean is compared in units of the layer's RMS standard
    /// deviation, the variance relative to the layer's mean variance. Only the backbone is compared: the
    /// image-pooling branch normalises two values per channel (one per image), which rounding moves arbitrarily
    /// (float32 against float64 already differ there by half a standard deviation after the ASPP).
    /// </summary>
    [LinuxFact(LinuxOnly.Python)]
    public void Bf16TrainForwardKeepsFloat32BatchNormStatistics()
    {
        using var golden = Golden();
        using var model = ModelFrom(golden, freezeBatchNorm: false);
        using var scope = NewDisposeScope();
        var mp = MixedPrecision.BFloat16(channelsLast: true);
        mp.Prepare(model);
        using (no_grad()) model.forward(mp.Input(golden["input"]));
        var expected = golden.WithPrefix("bn64/");
        var own = model.StateDictInOrder();
        double worstMean = 0, worstVar = 0, firstBlocks = 0;
        string worstMeanKey = "", worstVarKey = "";
        int compared = 0;
        foreach (var (key, want) in expected)
        {
            if (!key.StartsWith("backbone.features.", StringComparison.Ordinal) || !key.EndsWith(".running_mean", StringComparison.Ordinal)) continue;
            var varKey = key[..^"mean".Length] + "var";
            var (mean, variance) = (own[key], own[varKey]);
            Assert.True(mean.dtype == ScalarType.Float32 && variance.dtype == ScalarType.Float32, $"{key} is {mean.dtype}, {varKey} {variance.dtype}");
            compared++;
            var batchVar = ((expected[varKey] - 0.9) / 0.1).mean();
            var meanErr = ((mean.to(ScalarType.Float64) - want).abs().max() / 0.1 / batchVar.sqrt()).ToDouble();
            var varErr = ((variance.to(ScalarType.Float64) - expected[varKey]).abs().max() / 0.1 / batchVar).ToDouble();
            if (meanErr > worstMean) (worstMean, worstMeanKey) = (meanErr, key);
            if (varErr > worstVar) (worstVar, worstVarKey) = (varErr, varKey);
            // The stem and the first blocks (features.0–3, before much rounding has compounded).
            if (int.Parse(key.Split('.')[2], CultureInfo.InvariantCulture) < 4) firstBlocks = Math.Max(firstBlocks, Math.Max(meanErr, varErr));
        }
        double pyMean = golden.Meta.GetProperty("bn_mean_err_autocast_bf16").GetDouble(), pyVar = golden.Meta.GetProperty("bn_var_err_autocast_bf16").GetDouble();
        _out.WriteLine(FormattableString.Invariant(
            $"{compared} BatchNorms; means off by at most {worstMean:G3} σ ({worstMeanKey}; PyTorch autocast {pyMean:G3}), variances by {worstVar:G3} ({worstVarKey}; PyTorch {pyVar:G3}); features.0-3: {firstBlocks:G3}"));
        Assert.True(compared > 40, $"only {compared} BatchNorms compared");
        // bf16 activations carry ~2^-9 relative rounding at each of the first blocks' ~12 layers (measured: ~1%);
        // statistics summed in bfloat16 over the stem's ~1,600 values per channel would be off by several percent.
        Assert.True(firstBlocks < 0.03, $"the first blocks' statistics differ from float64's by {firstBlocks}");
        // Deeper, rounding compounds through 17 blocks of a random network; PyTorch's autocast drifts as far.
        Assert.True(worstMean < 2 * pyMean + 0.01, $"{worstMeanKey}: the batch mean is {worstMean} σ from float64's (PyTorch autocast: {pyMean})");
        Assert.True(worstVar < 2 * pyVar + 0.01, $"{worstVarKey}: the batch variance is {worstVar} from float64's (PyTorch autocast: {pyVar})");
    }

    /// <summary>A short bf16 run through the trainer: the loss falls, the checkpoint it saves is float32 and loads into a float32 model.</summary>
    [Fact]
    public void TrainerInBf16SavesFloat32Checkpoints()
    {
        var dir = ReferenceScripts.TempDir("mixed");
        try
        {
            var data = Path.Combine(dir, "voc");
            Synthetic.Generate(data, 12, 4, "voc", 64, 48);
            var config = TrainConfigRules.Resolve(new TrainConfig
            {
                Dataset = "synthetic", DataRoot = data, Backbone = "mobilenet", Output = Path.Combine(dir, "run"),
                BaseSize = 48, CropSize = 48, BatchSize = 4, Epochs = 3, Lr = 0.01, Workers = 0, NoVal = true, Device = "cpu",
                LogInterval = 1, Precision = "bf16",
            });
            var log = new CapturingLoggers();
            var progress = new ProgressRecorder();
            var summary = new Trainer(config, log, progress).Run();
            Assert.Contains("precision: bf16 (float32 master weights), channels-last", log.ToString());
            Assert.True(double.IsFinite(summary.LastEpochLoss), log.ToString());
            // The trainer reports each epoch's batches (1..n of n), with the running loss, the lr and images/s, then a final report.
            var perEpoch = (int)(summary.Iterations / 3);
            Assert.True(perEpoch > 0 && summary.Iterations == 3 * perEpoch, $"{summary.Iterations} iterations");
            var reports = progress.Reports;
            Assert.Equal(3 * (perEpoch + 1), reports.Count);
            for (var e = 0; e < 3; e++)
            {
                var epoch = reports.Skip(e * (perEpoch + 1)).Take(perEpoch + 1).ToList();
                Assert.All(epoch, r => Assert.Equal(($"epoch {e + 1}/3", (long?)perEpoch), (r.Label, r.Total)));
                Assert.Equal(Enumerable.Range(1, perEpoch).Select(i => (long)i).Append(perEpoch), epoch.Select(r => r.Done));
                Assert.Equal(Enumerable.Repeat(false, perEpoch).Append(true), epoch.Select(r => r.Final));
                Assert.All(epoch, r => Assert.Equal(new[] { "loss", "lr" }, r.Fields.Select(f => f.Name)));
                Assert.All(epoch, r => Assert.True(r.Rate is { PerSecond: > 0, Unit: "img" }, $"rate {r.Rate}"));
            }
            // The first step runs at the base rate (the poly schedule starts there), formatted as the lr field shows it.
            Assert.Equal("0.01", reports[0].Fields[1].Value);
            var sd = WeightFiles.LoadStateDict(summary.LastCheckpoint, out var info);
            try
            {
                Assert.NotEmpty(sd);
                foreach (var (k, t) in sd)
                    if (t.dtype.IsFloatingPoint())
                        Assert.True(t.dtype == ScalarType.Float32, $"{k} saved as {t.dtype}");
                using var reloaded = ModelFactory.Create(new ModelConfig("mobilenet", 16, info!.Model!.NumClasses));
                StateDictLoader.Load(reloaded, sd, summary.LastCheckpoint);
            }
            finally
            {
                foreach (var t in sd.Values) t.Dispose();
            }
            var recorded = ConfigLoader.Load<TrainConfig>(Path.Combine(dir, "run", "config.json"));
            Assert.Equal("bf16", recorded.Precision);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void UnknownPrecisionIsRefused()
    {
        var e = Assert.Throws<UserException>(() => TrainConfigRules.Resolve(new TrainConfig { Precision = "fp8" }));
        Assert.Contains("--precision", e.Message);
    }
}
