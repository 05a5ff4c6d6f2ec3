using DeepLabTorch.Checkpoints;
using DeepLabTorch.Cli;
using DeepLabTorch.Data;
using DeepLabTorch.Models;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;
using static DeepLabTorch.Tests.Inference.InferenceTestUtil;

namespace DeepLabTorch.Tests.Inference;

/// <summary>predict on an exported .onnx (ONNX Runtime) against predict on its checkpoint (TorchSharp).</summary>
public class OnnxPredictTests(ITestOutputHelper output)
{
    // The MobileNetV2 export tolerance of Export/DeepLabOnnxTests: ONNX Runtime's logits may differ from
    // ours by this fraction of the logits' scale (folded BatchNorm, other summation order).
    private const double Tolerance = 1e-4;

    /// <summary>
    /// A MobileNet DeepLabV3+ that looks trained: Kaiming-scaled convs and BatchNorm scale, shift and running
    /// statistics away from 1 and 0 (so the export's folding matters), all from System.Random(seed).
    /// Saved as our checkpoint with background/person names, which an .onnx file of 2 classes also gets.
    /// </summary>
    internal static string SaveTrainedLooking(string dir, int seed)
    {
        using var model = ModelFactory.Create(new ModelConfig("mobilenet", 16, 2));
        var rnd = new Random(seed);
        float U(double lo, double hi) => (float)(lo + (hi - lo) * rnd.NextDouble());
        void Set(Tensor t, Func<float> next)
        {
            var v = new float[t.numel()];
            for (int i = 0; i < v.Length; i++) v[i] = next();
            using var src = tensor(v, t.shape);
            t.copy_(src);
        }
        using (no_grad())
        {
            foreach (var (name, p) in model.named_parameters())
            {
                if (p.dim() == 4)
                {
                    double bound = Math.Sqrt(6.0 / (p.shape[1] * p.shape[2] * p.shape[3]));
                    Set(p, () => U(-bound, bound));
                }
                else if (name.EndsWith(".weight", StringComparison.Ordinal)) Set(p, () => U(0.5, 1.5));
                else Set(p, () => U(-0.1, 0.1));
            }
            foreach (var (name, b) in model.named_buffers())
            {
                if (name.EndsWith("running_mean", StringComparison.Ordinal)) Set(b, () => U(-0.1, 0.1));
                if (name.EndsWith("running_var", StringComparison.Ordinal)) Set(b, () => U(0.5, 1.5));
            }
        }
        model.eval();
        // Random weights favour one class everywhere; shift the classifier's bias so the test image splits
        // about evenly, and the masks have a boundary to get right.
        using (no_grad())
        using (var scope = NewDisposeScope())
        {
            var x = ImageTensor.FromRgb(TestImage(48, 64, 1), 48, 64);
            var logits = model.forward(x);
            var margin = (logits.select(1, 1) - logits.select(1, 0)).flatten().median();
            model.Decoder.Classifier.bias!.select(0, 1).sub_(margin);
        }
        var path = Path.Combine(dir, "model.safetensors");
        CheckpointStore.Save(path, model, null, new CheckpointInfo { Model = new CheckpointModel("mobilenet", 16, 2, new[] { "background", "person" }) });
        return path;
    }

    private static (int Code, string Stderr) Cli(params string[] args)
    {
        var err = new StringWriter();
        int code = Program.Run(args, new StringWriter(), err);
        return (code, err.ToString());
    }

    private static string Export(string dir, string weights, params string[] extra)
    {
        var onnx = Path.Combine(dir, extra.Length == 0 ? "model.onnx" : "model-variant.onnx");
        var (code, err) = Cli(new[] { "export", "--weights", weights, "--format", "onnx", "--output", onnx }.Concat(extra).ToArray());
        Assert.True(code == 0, err);
        return onnx;
    }

    [Fact]
    public void PredictOnTheOnnxExportEqualsPredictOnTheCheckpoint()
    {
        var dir = TempDir("onnx-predict");
        try
        {
            var input = Directory.CreateDirectory(Path.Combine(dir, "in")).FullName;
            // a and b share a size, so --batch-size 2 runs them together; c is alone.
            ImageCodec.WritePng(Path.Combine(input, "a.png"), TestImage(48, 64, 1), 48, 64);
            ImageCodec.WritePng(Path.Combine(input, "b.png"), TestImage(48, 64, 2), 48, 64);
            ImageCodec.WritePng(Path.Combine(input, "c.png"), TestImage(37, 53, 3), 37, 53);
            var checkpoint = SaveTrainedLooking(dir, 11);
            var onnx = Export(dir, checkpoint);

            string[] common = { "--input", input, "--save-logits", "--save-probs", "--overlay", "--batch-size", "2",
                "--scales", "0.75,1.0", "--flip", "--quiet" };
            var (tc, terr) = Cli(new[] { "predict", "--weights", checkpoint, "--output", Path.Combine(dir, "torch"), "--device", "cpu" }.Concat(common).ToArray());
            Assert.True(tc == 0, terr);
            var (oc, oerr) = Cli(new[] { "predict", "--weights", onnx, "--output", Path.Combine(dir, "onnx"), "--threads", "1" }.Concat(common).ToArray());
            Assert.True(oc == 0, oerr);

            foreach (var stem in new[] { "a", "b", "c" })
                CompareOutputs(Path.Combine(dir, "torch", stem), Path.Combine(dir, "onnx", stem), stem);
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>
    /// Logits within the export tolerance; masks equal wherever the top two logits are further apart than
    /// twice the tolerance (each may move by it); probabilities within one grey level.
    /// </summary>
    private void CompareOutputs(string torchStem, string onnxStem, string name)
    {
        var (tShape, t) = ReadNpy(torchStem + ".npy");
        var (oShape, o) = ReadNpy(onnxStem + ".npy");
        Assert.Equal(tShape, oShape);
        double maxDiff = 0, maxAbs = 0;
        for (int i = 0; i < t.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs(t[i] - o[i]));
            maxAbs = Math.Max(maxAbs, Math.Abs(t[i]));
        }
        double allowed = Tolerance * Math.Max(1, maxAbs);
        output.WriteLine($"{name}: max |ORT - TorchSharp| logit = {maxDiff:G3}, max |logit| = {maxAbs:G3} ({maxDiff / Math.Max(1, maxAbs):G3} of the scale)");
        Assert.True(maxDiff <= allowed, $"{name}.npy: max |ORT - TorchSharp| = {maxDiff}, allowed {allowed}");

        var (tm, h, w) = ImageCodec.DecodeMask(torchStem + ".png");
        var (om, oh, ow) = ImageCodec.DecodeMask(onnxStem + ".png");
        Assert.Equal((h, w), (oh, ow));
        Assert.Equal(new long[] { 2, h, w }, tShape);
        int plane = h * w, decided = 0, bothClasses = 0;
        for (int i = 0; i < plane; i++)
        {
            if (tm[i] == 1) bothClasses |= 2; else bothClasses |= 1;
            if (Math.Abs(t[i] - t[plane + i]) <= 2 * allowed) continue;
            decided++;
            Assert.True(tm[i] == om[i], $"{name}: pixel {i} is class {tm[i]} through TorchSharp, {om[i]} through ONNX Runtime");
        }
        // The comparison must cover nearly every pixel, and the masks must not be one class only.
        Assert.True(decided >= 0.99 * plane, $"{name}: only {decided} of {plane} pixels have a clear winner");
        Assert.Equal(3, bothClasses);

        var (tp, _, _) = ImageCodec.DecodeMask(torchStem + "_prob.png");
        var (op, _, _) = ImageCodec.DecodeMask(onnxStem + "_prob.png");
        for (int i = 0; i < plane; i++) Assert.InRange(op[i] - tp[i], -1, 1);
        Assert.True(File.Exists(onnxStem + "_overlay.png"), $"{name}: no overlay through ONNX Runtime");
    }

    [Fact]
    public void TheOnnxEngineNamesTheFlagItCannotHonour()
    {
        var dir = TempDir("onnx-refuse");
        try
        {
            var input = Directory.CreateDirectory(Path.Combine(dir, "in")).FullName;
            ImageCodec.WritePng(Path.Combine(input, "a.png"), TestImage(20, 24, 1), 20, 24);
            var checkpoint = SaveTrainedLooking(dir, 12);
            var onnx = Export(dir, checkpoint);
            var outDir = Path.Combine(dir, "out");
            (string[] Args, string Expected)[] cases =
            {
                (new[] { "--weights", onnx, "--device", "cuda" }, "--device cuda"),
                (new[] { "--weights", onnx, "--backbone", "resnet" }, "--backbone"),
                (new[] { "--weights", onnx, "--out-stride", "8" }, "--out-stride"),
                (new[] { "--weights", onnx, "--num-classes", "21" }, "--num-classes 21"),
                (new[] { "--weights", onnx, "--engine", "torch" }, "--engine torch"),
                (new[] { "--weights", onnx, "--engine", "tensorrt" }, "--engine must be torch or onnx"),
                (new[] { "--weights", onnx, "--threads", "0" }, "--threads"),
                (new[] { "--weights", Export(dir, checkpoint, "--with-preprocessing"), "--engine", "onnx" }, "--with-preprocessing"),
                (new[] { "--weights", checkpoint, "--engine", "onnx" }, "ONNX Runtime cannot load it"),
            };
            foreach (var (args, expected) in cases)
            {
                var (code, err) = Cli(new[] { "predict", "--input", input, "--output", outDir, "--quiet" }.Concat(args).ToArray());
                Assert.True(code == 2, $"{string.Join(" ", args)}: exit {code}, {err}");
                Assert.Contains(expected, err);
                Assert.Single(err.Trim().Split('\n'));
            }
            Assert.False(File.Exists(Path.Combine(outDir, "a.png")));
        }
        finally { Directory.Delete(dir, true); }
    }
}
