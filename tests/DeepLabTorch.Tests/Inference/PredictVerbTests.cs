using DeepLabTorch.Checkpoints;
using DeepLabTorch.Cli;
using DeepLabTorch.Data;
using DeepLabTorch.Inference;
using DeepLabTorch.Models;
using DeepLabTorch.Extensions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using static DeepLabTorch.Tests.Inference.InferenceTestUtil;

namespace DeepLabTorch.Tests.Inference;

/// <summary>The predict verb end to end on a small folder, with a real (random-weight) DeepLabV3+ checkpoint.</summary>
public class PredictVerbTests
{
    /// <summary>A MobileNet DeepLabV3+ with seeded random weights (global RNG untouched), saved as our checkpoint with class names.</summary>
    internal static string SaveModel(string dir, int classes, string[] names, out DeepLabV3Plus model)
    {
        model = ModelFactory.Create(new ModelConfig("mobilenet", 16, classes));
        InferenceTestUtil.Fill(model, 5);
        model.eval();
        var path = Path.Combine(dir, "model.safetensors");
        CheckpointStore.Save(path, model, null, new CheckpointInfo { Model = new CheckpointModel("mobilenet", 16, classes, names) });
        return path;
    }

    private static int Cli(params string[] args)
    {
        var err = new StringWriter();
        return Program.Run(args, new StringWriter(), err);
    }

    /// <summary>The model's own logits for an image file, computed directly (no Predictor).</summary>
    private static float[] DirectLogits(DeepLabV3Plus model, string file, out int h, out int w)
    {
        var (rgb, hh, ww) = ImageCodec.DecodeImage(file);
        h = hh; w = ww;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = ImageTensor.FromRgb(rgb, hh, ww);
        return model.forward(x).ToArray<float>();
    }

    [LinuxFact(LinuxOnly.Python)]
    public void FolderGivesIndexMasksWithPaletteNpyAndProbabilities()
    {
        var dir = TempDir("predict-verb");
        try
        {
            var input = Directory.CreateDirectory(Path.Combine(dir, "in")).FullName;
            ImageCodec.WritePng(Path.Combine(input, "a.png"), TestImage(40, 56, 1), 40, 56);
            ImageCodec.WritePng(Path.Combine(input, "b.png"), TestImage(40, 56, 2), 40, 56);
            ImageCodec.WriteJpeg(Path.Combine(input, "c.jpg"), TestImage(33, 47, 3), 33, 47);
            File.WriteAllText(Path.Combine(input, "broken.jpg"), "not a jpeg");
            var names = new[] { "background", "cat", "person" };
            var weights = SaveModel(dir, 3, names, out var model);
            using var _m = model;
            var output = Path.Combine(dir, "out");

            int code = Cli("predict", "--weights", weights, "--input", input, "--output", output, "--save-logits", "--save-probs",
                "--overlay", "--batch-size", "2", "--device", "cpu", "--quiet");
            Assert.Equal(1, code); // broken.jpg failed, the rest went on
            Assert.False(File.Exists(Path.Combine(output, "broken.png")));

            foreach (var stem in new[] { "a", "b", "c" })
            {
                var logits = DirectLogits(model, Path.Combine(input, stem + (stem == "c" ? ".jpg" : ".png")), out int h, out int w);
                // The mask holds argmax class indices.
                var (idx, mh, mw) = ImageCodec.DecodeMask(Path.Combine(output, stem + ".png"));
                Assert.Equal((h, w), (mh, mw));
                int disagree = 0;
                for (int i = 0; i < h * w; i++)
                {
                    int best = 0;
                    for (int c = 1; c < 3; c++) if (logits[c * h * w + i] > logits[best * h * w + i]) best = c;
                    if (best != idx[i]) disagree++;
                }
                Assert.True(disagree == 0, $"{stem}: {disagree} mask pixels differ from argmax");
                // The .npy is the pre-softmax logits at the input size.
                var (shape, npy) = ReadNpy(Path.Combine(output, stem + ".npy"));
                Assert.Equal(new long[] { 3, h, w }, shape);
                double maxDiff = 0, maxAbs = 0;
                for (int i = 0; i < npy.Length; i++)
                {
                    maxDiff = Math.Max(maxDiff, Math.Abs(npy[i] - logits[i]));
                    maxAbs = Math.Max(maxAbs, Math.Abs(logits[i]));
                }
                // predict runs the weights channels-last (NHWC convolutions), which sums in another order
                // than the plain model: float32 rounding, relative to the logits' scale.
                Assert.True(maxDiff <= 1e-5 * Math.Max(1, maxAbs), $"{stem}.npy differs from the model by {maxDiff} (max |logit| {maxAbs})");
                Assert.True(File.Exists(Path.Combine(output, stem + "_overlay.png")));
                // The probability PNG is person's (class 2, by name) softmax × 255.
                var (prob, ph, pw) = ImageCodec.DecodeMask(Path.Combine(output, stem + "_prob.png"));
                Assert.Equal((h, w), (ph, pw));
                for (int i = 0; i < h * w; i += 97)
                {
                    double m = Math.Max(logits[i], Math.Max(logits[h * w + i], logits[2 * h * w + i]));
                    double e0 = Math.Exp(logits[i] - m), e1 = Math.Exp(logits[h * w + i] - m), e2 = Math.Exp(logits[2 * h * w + i] - m);
                    Assert.InRange(prob[i], 255 * e2 / (e0 + e1 + e2) - 1, 255 * e2 / (e0 + e1 + e2) + 1);
                }
            }

            // numpy reads the .npy with the documented shape and dtype; PIL sees a palette PNG with VOC colours.
            var py = PythonCode("""
                import sys, numpy as np
                from PIL import Image
                a = np.load(sys.argv[1] + "/a.npy")
                m = Image.open(sys.argv[1] + "/a.png")
                idx = np.array(m)
                pal = m.getpalette()
                print(a.dtype, a.shape, m.mode, int(idx.max()) <= 2, pal[3:6], pal[6:9], int((a.argmax(0) == idx).mean() * 100))
                """, output);
            // Class 1 'cat' takes VOC cat's colour (64,0,0); class 2 'person' VOC person's (192,128,128).
            Assert.Equal("float32 (3, 40, 56) P True [64, 0, 0] [192, 128, 128] 100", py.Trim());
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void SingleScaleTtaEqualsPlainPredictAndResizeKeepsSize()
    {
        var dir = TempDir("predict-tta");
        try
        {
            var input = Path.Combine(dir, "img.png");
            ImageCodec.WritePng(input, TestImage(36, 44, 7), 36, 44);
            var weights = SaveModel(dir, 2, new[] { "background", "person" }, out var model);
            using var _m = model;
            string Run(string name, params string[] extra)
            {
                var outDir = Path.Combine(dir, name);
                var args = new List<string> { "predict", "--weights", weights, "--input", input, "--output", outDir, "--save-logits", "--device", "cpu", "--quiet" };
                args.AddRange(extra);
                Assert.Equal(0, Cli(args.ToArray()));
                return Path.Combine(outDir, "img");
            }
            var plain = Run("plain");
            var tta = Run("tta", "--scales", "1.0");
            Assert.Equal(File.ReadAllBytes(plain + ".npy"), File.ReadAllBytes(tta + ".npy"));
            Assert.Equal(File.ReadAllBytes(plain + ".png"), File.ReadAllBytes(tta + ".png"));
            var multi = Run("multi", "--scales", "0.75,1.25", "--flip", "--resize", "30");
            var (shape, _) = ReadNpy(multi + ".npy");
            Assert.Equal(new long[] { 2, 36, 44 }, shape);
            Assert.NotEqual(File.ReadAllBytes(plain + ".npy"), File.ReadAllBytes(multi + ".npy"));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void UserErrorsExitWithTwo()
    {
        var dir = TempDir("predict-errors");
        try
        {
            var input = Path.Combine(dir, "img.png");
            ImageCodec.WritePng(input, TestImage(8, 8), 8, 8);
            Assert.Equal(2, Cli("predict", "--weights", Path.Combine(dir, "none.safetensors"), "--input", input, "--output", dir));
            var weights = SaveModel(dir, 2, new[] { "background", "person" }, out var model);
            model.Dispose();
            Assert.Equal(2, Cli("predict", "--weights", weights, "--input", Path.Combine(dir, "*.gif"), "--output", dir));
            Assert.Equal(2, Cli("predict", "--weights", weights, "--input", input, "--output", dir, "--scales", "0,1"));
            Assert.Equal(2, Cli("predict", "--weights", weights, "--input", input, "--output", dir, "--save-probs", "--prob-class", "dog"));
            Assert.Equal(2, Cli("predict", "--weights", weights, "--input", input, "--output", dir, "--device", "tpu"));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void PlainSafetensorsAreRecognisedFromTheirKeysAndClassifier()
    {
        var dir = TempDir("plain-weights");
        try
        {
            using var model = ModelFactory.Create(new ModelConfig("mobilenet", 16, 4));
            Fill(model, 12);
            var path = Path.Combine(dir, "plain.safetensors");
            Safetensors.Write(path, model.StateDictInOrder(), null);
            using var loaded = ModelLoader.Load(path);
            Assert.Equal(new ModelConfig("mobilenet", 16, 4), loaded.Config);
            Assert.Equal(new[] { "background", "class1", "class2", "class3" }, loaded.ClassNames);
            Assert.Null(loaded.Info?.Model);
            var a = loaded.Model.StateDictInOrder()["decoder.last_conv.8.weight"]; // the module's own tensor: not disposed here
            Assert.True(a.Equals(model.StateDictInOrder()["decoder.last_conv.8.weight"]));
            // A flag that contradicts the classifier's shape is an error that names the file.
            var e = Assert.ThrowsAny<Exception>(() => ModelLoader.Load(path, new ModelRequest { NumClasses = 21 }));
            Assert.Contains("plain.safetensors", e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void OutputStemsKeepSubfoldersApartAndNumberTwins()
    {
        var root = Path.Combine(Path.GetTempPath(), "stems");
        var files = new[] { Path.Combine(root, "a", "x.jpg"), Path.Combine(root, "b", "x.jpg"), Path.Combine(root, "b", "x.png") };
        var stems = PredictJob.OutputStems(files);
        Assert.Equal(new[] { Path.Combine("a", "x"), Path.Combine("b", "x"), Path.Combine("b", "x") + "-2" }, stems);
        Assert.Equal(new[] { "y" }, PredictJob.OutputStems(new[] { Path.Combine(root, "y.png") }));
    }
}
