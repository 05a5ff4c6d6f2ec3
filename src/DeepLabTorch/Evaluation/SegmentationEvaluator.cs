using System.Diagnostics;
using DeepLabTorch.Data;
using DeepLabTorch.Inference;
using DeepLabTorch.Extensions;
using DeepLabTorch.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Evaluation;

/// <summary>One evaluated image kept for display: RGB input, ground-truth and predicted class indices (HxW).</summary>
internal sealed record EvalSample(string Id, int Height, int Width, byte[] Rgb, byte[] Truth, byte[] Prediction);

/// <summary>The outcome of evaluating a split.</summary>
internal sealed record EvalResult(SegmentationMetrics Metrics, int Images, double Seconds, IReadOnlyList<EvalSample> Samples);

/// <summary>Options of an evaluation pass. Scales and Flip give multi-scale + flip testing.</summary>
internal sealed record EvalOptions
{
    public double[] Scales { get; init; } = { 1.0 };
    public bool Flip { get; init; }
    /// <summary>How many images to keep as EvalSample (for TensorBoard and the HTML report).</summary>
    public int KeepSamples { get; init; }
    /// <summary>Stop after this many images (null: the whole split).</summary>
    public int? MaxImages { get; init; }
    public bool AlignCorners { get; init; } = true;
    /// <summary>Called per image with its id and predicted class indices (HxW), e.g. to save PNGs.</summary>
    public Action<string, byte[], int, int>? OnPrediction { get; init; }
    /// <summary>Told after each batch how many of the images are done; told once more, as Final, when the pass stops.</summary>
    public IProgress<ProgressReport>? Progress { get; init; }
    /// <summary>The label of the progress reports.</summary>
    public string ProgressLabel { get; init; } = "eval";
    /// <summary>
    /// Data-parallel evaluation: called once at the end with the confusion matrix's counts followed by
    /// the number of images, to sum them over the processes in place before the metrics are computed.
    /// </summary>
    public Action<long[]>? SumCounts { get; init; }
}

/// <summary>
/// Streams a whole split through a model into one confusion matrix. With the data loader's default
/// eval mode every image is evaluated at its full original size.
/// </summary>
internal static class SegmentationEvaluator
{
    public static EvalResult Run(nn.Module<Tensor, Tensor> model, DataLoader loader, int totalImages, int numClasses, IReadOnlyList<string> classNames,
        Device device, EvalOptions options, CancellationToken ct = default)
    {
        if (options.Scales.Length == 0 || options.Scales.Any(s => !(s > 0 && s <= 8)))
            throw new UserException($"--scales must be positive factors up to 8, got {string.Join(",", options.Scales)}");
        var wasTraining = model.training;
        model.eval();
        var clock = Stopwatch.StartNew();
        var samples = new List<EvalSample>();
        var done = 0;
        var limit = Math.Min(totalImages, options.MaxImages ?? int.MaxValue);
        using var cm = new ConfusionMatrix(numClasses);
        try
        {
            using var inference = inference_mode();
            foreach (var batch in loader.Epoch(0, ct))
            {
                using (batch)
                using (var scope = NewDisposeScope())
                {
                    var images = batch.Images.to(device);
                    var masks = batch.Masks.to(device);
                    var scores = Predict(model, images, options.Scales, options.Flip, options.AlignCorners);
                    var pred = Inference.SegmentationOutputs.ArgMax(scores, 1);
                    cm.Update(pred, masks);
                    var n = (int)images.size(0);
                    if (options.OnPrediction is not null || samples.Count < options.KeepSamples)
                    {
                        var h = (int)images.size(2);
                        var w = (int)images.size(3);
                        var predBytes = pred.to(ScalarType.Byte).cpu();
                        for (var k = 0; k < n; k++)
                        {
                            var p = predBytes[k].contiguous().ToArray<byte>();
                            options.OnPrediction?.Invoke(batch.Ids[k], p, h, w);
                            if (samples.Count < options.KeepSamples)
                            {
                                var truth = masks[k].to(ScalarType.Byte).cpu().contiguous().ToArray<byte>();
                                samples.Add(new EvalSample(batch.Ids[k], h, w, Denormalize(images[k]), truth, p));
                            }
                        }
                    }
                    done += n;
                }
                options.Progress?.Report(new ProgressReport(options.ProgressLabel, done, limit, "images", clock.Elapsed));
                ct.ThrowIfCancellationRequested();
                if (done >= limit) break;
            }
        }
        finally
        {
            model.train(wasTraining);
            // Finished, cancelled or failed: the pass ends here, so a renderer can close its line.
            options.Progress?.Report(new ProgressReport(options.ProgressLabel, done, limit, "images", clock.Elapsed) { Final = true });
        }
        return Result(cm.Counts(), done, numClasses, classNames, options, clock.Elapsed.TotalSeconds, samples);
    }

    /// <summary>The result of a process that has no images to evaluate (its block of the split is empty): it still takes part in SumCounts.</summary>
    public static EvalResult Nothing(int numClasses, IReadOnlyList<string> classNames, EvalOptions options) =>
        Result(new long[numClasses * numClasses], 0, numClasses, classNames, options, 0, Array.Empty<EvalSample>());

    private static EvalResult Result(long[] counts, int images, int numClasses, IReadOnlyList<string> classNames, EvalOptions options, double seconds, IReadOnlyList<EvalSample> samples)
    {
        if (options.SumCounts is { } sum)
        {
            var all = new long[counts.Length + 1];
            counts.CopyTo(all, 0);
            all[^1] = images;
            sum(all);
            counts = all[..^1];
            images = (int)all[^1];
        }
        return new EvalResult(SegmentationMetrics.FromCounts(counts, numClasses, classNames), images, seconds, samples);
    }

    /// <summary>Logits [N,C,H,W] at the input size, averaged over scales and flip (TestTimeAugmentation).</summary>
    public static Tensor Predict(nn.Module<Tensor, Tensor> model, Tensor images, double[] scales, bool flip, bool alignCorners = true) =>
        TestTimeAugmentation.AverageLogits(model.ForwardFloat32, images, scales, flip, alignCorners);

    /// <summary>A normalised [3,H,W] image back to RGB bytes (HWC), undoing ImageNet mean/std.</summary>
    public static byte[] Denormalize(Tensor chw)
    {
        using var scope = NewDisposeScope();
        var mean = tensor(ImageTensor.Mean, new long[] { 3, 1, 1 }).to(chw.device);
        var std = tensor(ImageTensor.Std, new long[] { 3, 1, 1 }).to(chw.device);
        var rgb = chw.mul(std).Plus(mean).mul(HeldScalars.Byte255).round().clamp(HeldScalars.Zero, HeldScalars.Byte255).to(ScalarType.Byte).permute(1, 2, 0).contiguous().cpu();
        return rgb.ToArray<byte>();
    }
}
