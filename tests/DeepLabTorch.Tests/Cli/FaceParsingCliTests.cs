using System.Globalization;
using System.Text.Json;
using DeepLabTorch.Data;
using DeepLabTorch.Tests.Training;
using Xunit;

namespace DeepLabTorch.Tests.Cli;

/// <summary>
/// The face-parsing networks as a user takes them: a CelebAMask-HQ-layout tree (synthetic), train with the
/// recipe's OHEM loss, colour jitter and label-swapping flips, evaluate with mIoU and F1 per part, predict.
/// </summary>
public sealed class FaceParsingCliTests : IDisposable
{
    private readonly string _dir = ReferenceScripts.TempDir("cli-faces");

    public void Dispose() => Directory.Delete(_dir, true);

    private string Tree(int count, int side)
    {
        var root = Path.Combine(_dir, "faces");
        var (code, stdout, stderr) = CliRunner.Run(_dir, "data", "synth", "--out", root, "--count", S(count), "--kind", "celebamask-hq",
            "--width", S(side), "--height", S(side));
        Assert.True(code == 0, stdout + stderr);
        return root;
    }

    private static string S(int v) => v.ToString(CultureInfo.InvariantCulture);

    private static void Ok((int Code, string Stdout, string Stderr) r) => Assert.True(r.Code == 0, r.Stdout + r.Stderr);

    [Fact]
    public void Stdc1LearnsTheFacePartsEvaluatesWithF1AndPredicts()
    {
        var root = Tree(60, 48);
        var run = Path.Combine(_dir, "stdc1");
        Ok(CliRunner.Run(_dir, "train", "--backbone", "stdc1", "--dataset", "celebamask-hq", "--data-root", root,
            "--base-size", "48", "--crop-size", "48", "--min-scale", "0.75", "--max-scale", "1.5", "--color-jitter", "0.5",
            "--loss-type", "ohem", "--batch-size", "8", "--lr", "0.01", "--epochs", "8", "--workers", "2", "--threads", "2", "--output", run));
        var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "config.json"))).RootElement;
        Assert.Equal("stdc1", config.GetProperty("backbone").GetString());

        // The all-background answer scores background's IoU (its pixel share) and 0 for the 18 parts.
        var val = new CelebAMaskHqDataset(root, "val");
        long background = 0, pixels = 0;
        for (int i = 0; i < val.Count; i++)
        {
            var s = val.Load(i);
            background += s.Mask.Count(v => v == 0);
            pixels += s.Mask.Length;
        }
        var baseline = (double)background / pixels / 19;

        var eval = CliRunner.Run(_dir, "eval", "--weights", Path.Combine(run, "best.safetensors"), "--dataset", "celebamask-hq",
            "--data-root", root, "--split", "val", "--json");
        Ok(eval);
        var r = JsonDocument.Parse(eval.Stdout).RootElement;
        var miou = r.GetProperty("miou").GetDouble();
        Assert.True(miou > 4 * baseline, $"mIoU {miou:P1} against the all-background {baseline:P1}");
        Assert.True(r.GetProperty("class_f1").GetProperty("skin").GetDouble() > 0.5, eval.Stdout);
        Assert.True(r.GetProperty("mean_f1").GetDouble() > 0, eval.Stdout);

        var predictions = Path.Combine(_dir, "pred");
        Ok(CliRunner.Run(_dir, "predict", "--weights", Path.Combine(run, "best.safetensors"), "--input",
            CelebAMaskHq.ImagePath(root, 4), "--output", predictions, "--overlay", "--part-masks"));
        var (labels, h, w) = ImageCodec.DecodeMask(Path.Combine(predictions, "4.png"));
        Assert.Equal((96, 96), (h, w));   // the image's own size (twice the masks')
        Assert.True(labels.Distinct().Count() >= 3, "a face parsed into several parts");
        Assert.True(File.Exists(Path.Combine(predictions, "4_overlay.png")));
        // One mask per part, named after it: 255 exactly where the part map holds that part.
        Assert.Equal(18, Directory.GetFiles(predictions, "4_*.png").Length - 1);
        foreach (var (name, label) in new[] { ("skin", 1), ("hair", 17), ("l_eye", 4) })
        {
            var (part, _, _) = ImageCodec.DecodeMask(Path.Combine(predictions, $"4_{name}.png"));
            Assert.Equal(labels.Select(v => v == label ? (byte)255 : (byte)0), part);
        }

        // matte: the face parse's parts together are the person (every part by default, or the ones named).
        var matted = Path.Combine(_dir, "matte");
        var m = CliRunner.Run(_dir, "matte", "--weights", Path.Combine(run, "best.safetensors"), "--input", CelebAMaskHq.ImagePath(root, 4),
            "--background", "green", "--output", matted, "--save-alpha", "--edge-radius", "0");
        Ok(m);
        Assert.Contains("person = class 1,2,3", m.Stderr);
        var (alpha, _, _) = ImageCodec.DecodeMask(Path.Combine(matted, "4_alpha.png"));
        // Where the parse says skin the alpha is high, where it says background low (edge refinement off).
        var skin = Enumerable.Range(0, labels.Length).Where(i => labels[i] == 1).Average(i => alpha[i]);
        var bg = Enumerable.Range(0, labels.Length).Where(i => labels[i] == 0).Average(i => alpha[i]);
        Assert.True(skin > 127 && bg < 128, $"alpha over skin {skin:F0}, over background {bg:F0}");
        m = CliRunner.Run(_dir, "matte", "--weights", Path.Combine(run, "best.safetensors"), "--input", CelebAMaskHq.ImagePath(root, 4),
            "--background", "green", "--output", Path.Combine(_dir, "matte2"), "--person-class", "skin,hair,neck");
        Ok(m);
        Assert.Contains("(skin,hair,neck)", m.Stderr);

        // recolor: the hair the model finds changes colour, nothing else does.
        var recolored = Path.Combine(_dir, "recolor");
        Ok(CliRunner.Run(_dir, "recolor", "--weights", Path.Combine(run, "best.safetensors"), "--input", CelebAMaskHq.ImagePath(root, 4),
            "--part", "hair", "--color", "#2040e0", "--output", recolored));
        var (before, bh, bw) = ImageCodec.DecodeImage(CelebAMaskHq.ImagePath(root, 4));
        var (after, _, _) = ImageCodec.DecodeImage(Path.Combine(recolored, "4_recolor.png"));
        Assert.Equal((96, 96), (bh, bw));
        int changedHair = 0, changedElsewhere = 0;
        for (int i = 0; i < labels.Length; i++)
        {
            bool changed = before[3 * i] != after[3 * i] || before[3 * i + 1] != after[3 * i + 1] || before[3 * i + 2] != after[3 * i + 2];
            if (labels[i] == 17) changedHair += changed ? 1 : 0;
            else changedElsewhere += changed ? 1 : 0;
        }
        Assert.Equal(0, changedElsewhere);
        Assert.True(changedHair > labels.Count(v => v == 17) / 2, $"{changedHair} hair pixels changed");
    }

    [Fact]
    public void DataCheckNamesBrokenAndMissingPartFiles()
    {
        var root = Tree(6, 32);
        File.WriteAllText(CelebAMaskHq.PartPath(root, 2, "nose"), "not a png");
        foreach (var f in Directory.GetFiles(Path.GetDirectoryName(CelebAMaskHq.PartPath(root, 4, "skin"))!, "00004_*.png")) File.Delete(f);
        var r = CliRunner.Run(_dir, "data", "check", "--dataset", "celebamask-hq", "--data-root", root);
        Assert.Equal(1, r.Code);
        Assert.Contains("2 problem(s)", r.Stdout);
        Assert.Contains("00002_nose.png: not a PNG file", r.Stdout);
        Assert.Contains("face 4 has no part mask at all", r.Stdout);
    }

    [Fact]
    public void BiSeNetTrainsAndItsCheckpointSaysWhatItHolds()
    {
        var root = Tree(10, 40);
        var run = Path.Combine(_dir, "bisenet");
        Ok(CliRunner.Run(_dir, "train", "--backbone", "bisenet", "--pretrained-backbone", "none", "--dataset", "celebamask-hq", "--data-root", root,
            "--base-size", "40", "--crop-size", "32", "--loss-type", "ohem", "--batch-size", "2", "--max-iters", "2", "--epochs", "1",
            "--workers", "0", "--threads", "2", "--no-val", "--output", run));
        var r = CliRunner.Run(_dir, "train", "--resume", Path.Combine(run, "last.safetensors"), "--backbone", "stdc2");
        Assert.Equal(2, r.Code);
        Assert.Contains("holds a bisenet model", r.Stderr);
        var export = CliRunner.Run(_dir, "export", "--weights", Path.Combine(run, "last.safetensors"), "--format", "onnx", "--output", Path.Combine(_dir, "m.onnx"),
            "--with-preprocessing", "--argmax");
        Ok(export);
        Assert.Contains("bisenet", export.Stdout);
        Ok(CliRunner.Run(_dir, "export", "--weights", Path.Combine(run, "last.safetensors"), "--format", "safetensors", "--output", Path.Combine(_dir, "m.safetensors")));
    }
}
