using DeepLabTorch.Checkpoints;
using DeepLabTorch.Config;
using DeepLabTorch.Data;
using DeepLabTorch.Evaluation;
using DeepLabTorch.Models;
using DeepLabTorch.Training;
using DeepLabTorch.Extensions;
using Xunit;
using static DeepLabTorch.Tests.Inference.InferenceTestUtil;

namespace DeepLabTorch.Tests.Inference;

/// <summary>The portrait recipe: configs/portrait-mobilenet.json from a 21-class checkpoint onto a synthetic portrait set, and its metrics.</summary>
public class PortraitRecipeTests
{
    [Fact]
    public void PortraitConfigLoadsAsTwoClassFineTuneOnFolderPairs()
    {
        var c = ConfigLoader.Load<TrainConfig>(Path.Combine(RepoRoot, "configs", "portrait-mobilenet.json"));
        Assert.Equal(2, c.NumClasses);
        Assert.Equal("folder", c.Dataset);
        Assert.Equal(new[] { "background", "person" }, c.ClassNames);
        Assert.True(c.Ft);
        Assert.EndsWith(".safetensors", c.Resume);
        Assert.Contains(c.LossType, new[] { "ce", "dice" });
        Assert.Equal("mobilenet", c.Backbone);
    }

    [Fact]
    public void FineTunesAVocCheckpointOntoPortraitsWithANewHeadAndFallingLoss()
    {
        var dir = TempDir("portrait");
        try
        {
            var data = Path.Combine(dir, "portrait");
            Synthetic.Generate(data, 24, 5, "portrait", 56, 48);
            // The "VOC" checkpoint: a 21-class model as the trainer would save it.
            var voc = Path.Combine(dir, "voc.safetensors");
            float[] vocFirstConv, vocClassifierRow;
            using (var m = ModelFactory.Create(new ModelConfig("mobilenet", 16, 21)))
            {
                // The model's own initialisation (a well-conditioned network); no seed needed for what is checked.
                CheckpointStore.Save(voc, m, null, new CheckpointInfo { Model = new CheckpointModel("mobilenet", 16, 21, VocClasses.Names.ToArray()) });
                vocFirstConv = m.state_dict()["backbone.features.0.0.weight"].ToArray<float>();
                vocClassifierRow = m.state_dict()[m.ClassifierPrefix + ".weight"].ToArray<float>()[..256];
            }

            var recipe = ConfigLoader.Load<TrainConfig>(Path.Combine(RepoRoot, "configs", "portrait-mobilenet.json"));
            var config = TrainConfigRules.Resolve(recipe with
            {
                DataRoot = data, Resume = voc, Output = Path.Combine(dir, "run"),
                BaseSize = 48, CropSize = 48, BatchSize = 4, Epochs = 5, Lr = 0.01, Workers = 0,
                NoVal = true, Device = "cpu", LogInterval = 1, GaussianBlur = false,
            });
            var log = new CapturingLoggers();
            var summary = new Trainer(config, log).Run();

            Assert.Contains("re-initialised " + "decoder.last_conv.8.weight", log.ToString());
            Assert.True(summary.LastEpochLoss < summary.FirstEpochLoss,
                $"loss did not go down: first epoch {summary.FirstEpochLoss}, last {summary.LastEpochLoss}\n{log}");

            // The result is a 2-class checkpoint whose backbone started from the VOC weights (it moved, a little).
            var sd = WeightFiles.LoadStateDict(summary.LastCheckpoint, out var info);
            try
            {
                Assert.Equal(2, info!.Model!.NumClasses);
                Assert.Equal(new long[] { 2, 256, 1, 1 }, sd["decoder.last_conv.8.weight"].shape);
                var first = sd["backbone.features.0.0.weight"].ToArray<float>();
                // Fine-tuning moves the loaded weights (here ~20% of their size in 5 epochs at lr 0.01); an
                // independent initialisation would differ by about 1.4 times their size (two normals: √2·E|w|).
                double drift = first.Zip(vocFirstConv, (a, b) => Math.Abs(a - b)).Average();
                double size = vocFirstConv.Select(Math.Abs).Average();
                Assert.True(drift < 0.5 * size, $"the backbone moved by {drift} on average (weights ~{size}): it was not loaded from the VOC checkpoint");
                var head = sd["decoder.last_conv.8.weight"].ToArray<float>()[..256];
                Assert.NotEqual(vocClassifierRow, head);
            }
            finally
            {
                foreach (var t in sd.Values) t.Dispose();
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void BinaryMetricsOnAHandBuiltCase()
    {
        // 4x4: ground-truth person is the left half (8 px); the prediction marks the left 3 columns (12 px).
        var gt = new byte[16];
        var pred = new byte[16];
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 4; x++)
            {
                gt[y * 4 + x] = (byte)(x < 2 ? 1 : 0);
                pred[y * 4 + x] = (byte)(x < 3 ? 1 : 0);
            }
        using var cm = new ConfusionMatrix(2);
        cm.Update(pred, gt);
        var m = cm.Compute(new[] { "background", "person" });
        // person: TP 8, FP 4, FN 0 → IoU 8/12; background: TP 4, FN 4 → IoU 4/8; mIoU = (2/3 + 1/2)/2.
        Assert.Equal(8.0 / 12, m.ClassIoU[1], 10);
        Assert.Equal(0.5, m.ClassIoU[0], 10);
        Assert.Equal((8.0 / 12 + 0.5) / 2, m.MeanIoU, 10);

        // Boundary F: the person's boundary column (x = 1, 4 px) against the prediction's (x = 2, 4 px) is
        // one pixel off: no match at tolerance 0 (F = 0), all matched at tolerance 1 (F = 1).
        var strict = BoundaryFScore.Compute(pred, gt, 4, 4, tolerance: 0);
        Assert.Equal(0.0, strict.F, 10);
        Assert.Equal(4, strict.TrueBoundary);
        Assert.Equal(4, strict.PredictedBoundary);
        Assert.Equal(1.0, BoundaryFScore.Compute(pred, gt, 4, 4, tolerance: 1).F, 10);
        Assert.Equal(1.0, BoundaryFScore.Compute(gt, gt, 4, 4, tolerance: 0).F, 10);
    }
}
