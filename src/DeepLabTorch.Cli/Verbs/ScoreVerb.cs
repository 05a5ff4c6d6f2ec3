using CommandLine;
using DeepLabTorch.Data;
using DeepLabTorch.Evaluation;
using DeepLabTorch.Reporting;

namespace DeepLabTorch.Cli.Verbs;

[Verb("score", HelpText = "Score prediction PNGs (palette or grayscale class indices) against ground-truth PNGs of the same names, " +
    "without a model: per-class IoU, mIoU, pixel accuracy, FWIoU. Ground-truth pixels of 255 are ignored.")]
public sealed class ScoreVerb : VerbBase
{
    [Option("pred", Required = true, HelpText = "Folder of prediction PNGs.")]
    public string Pred { get; set; } = "";
    [Option("gt", Required = true, HelpText = "Folder of ground-truth PNGs (e.g. VOC SegmentationClass).")]
    public string Gt { get; set; } = "";
    [Option("num-classes", Required = true, HelpText = "Number of classes.")]
    public int NumClasses { get; set; }
    [Option("class-names", HelpText = "Comma-separated class names (default: VOC names for 21 classes, else class N).")]
    public string? ClassNames { get; set; }
    [Option("allow-missing", HelpText = "Score only ground truths that have a prediction (default: a missing prediction is an error).")]
    public bool AllowMissing { get; set; }
    [Option("json", HelpText = "Print the metrics as JSON instead of a table.")]
    public bool Json { get; set; }

    public override int Run()
    {
        if (NumClasses < 2 || NumClasses > 255) throw new UserException($"--num-classes must be between 2 and 255, got {NumClasses}");
        if (!Directory.Exists(Pred)) throw new UserException($"--pred: folder not found: {Pred}");
        if (!Directory.Exists(Gt)) throw new UserException($"--gt: folder not found: {Gt}");
        IReadOnlyList<string> names = ClassNames is { } cn ? cn.Split(',', StringSplitOptions.TrimEntries)
            : NumClasses == VocClasses.Names.Count ? VocClasses.Names : Enumerable.Range(0, NumClasses).Select(i => $"class {i}").ToArray();
        if (names.Count != NumClasses) throw new UserException($"--class-names gives {names.Count} names for {NumClasses} classes");

        var truths = Directory.GetFiles(Gt, "*.png").OrderBy(p => p, StringComparer.Ordinal).ToList();
        if (truths.Count == 0) throw new UserException($"--gt: no .png files in {Gt}");
        var missing = truths.Where(t => !File.Exists(Path.Combine(Pred, Path.GetFileName(t)))).ToList();
        if (missing.Count > 0 && !AllowMissing)
            throw new UserException($"{missing.Count} of {truths.Count} ground truths have no prediction in {Pred} " +
                $"(first: {Path.GetFileName(missing[0])}); pass --allow-missing to score the rest");
        using var cm = new ConfusionMatrix(NumClasses);
        var scored = 0;
        foreach (var gtPath in truths.Except(missing))
        {
            var predPath = Path.Combine(Pred, Path.GetFileName(gtPath));
            var (gt, gh, gw) = ImageCodec.DecodeMask(gtPath);
            var (pred, ph, pw) = ImageCodec.DecodeMask(predPath);
            if (gh != ph || gw != pw) throw new DataException(predPath, $"is {pw}x{ph} but its ground truth {gtPath} is {gw}x{gh}");
            for (var i = 0; i < pred.Length; i++)
                if (pred[i] >= NumClasses && gt[i] != 255)
                    throw new DataException(predPath, $"holds class index {pred[i]}, outside [0, {NumClasses})");
            // Predicted values outside the class range can only sit on ignored pixels here; map them to 0 so the matrix accepts them.
            for (var i = 0; i < pred.Length; i++) if (pred[i] >= NumClasses) pred[i] = 0;
            cm.Update(pred, gt);
            scored++;
        }
        var m = cm.Compute(names);
        if (Json)
        {
            Results.WriteLine(MetricsJson.Serialize(m, new Dictionary<string, object?> { ["pred"] = Pred, ["gt"] = Gt, ["images"] = scored, ["missing"] = missing.Count }));
        }
        else
        {
            Results.WriteLine($"{scored} predictions scored against {Gt}" + (missing.Count > 0 ? $" ({missing.Count} without prediction skipped)" : "") + ":");
            Results.WriteLine(m.FormatTable());
        }
        return 0;
    }
}
