using DeepLabTorch.Export.Onnx;
using DeepLabTorch.Export.Onnx.Proto;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Models;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace DeepLabTorch.Export.Quantization;

/// <summary>What the int8 export did: the convolutions it quantised and kept, and the adds it quantised.</summary>
public sealed record QuantizationSummary(IReadOnlyList<string> QuantisedConvs, IReadOnlyList<string> FloatConvs, int QuantisedAdds, int CalibrationImages);

/// <summary>
/// The deployment exports beyond float32: `--quantize int8` (a QDQ graph calibrated on images: weights int8 per
/// output channel, activations uint8 or int8 per tensor) and `--quantize fp16` (a float16 graph whose input and output
/// stay float32). Both start from the float graph that <see cref="OnnxExport.Write"/> writes.
/// </summary>
public static class QuantizedOnnxExport
{
    /// <summary>Calibrates on <see cref="Int8Options.CalibrationFolder"/> and writes the int8 QDQ graph to <paramref name="path"/>.</summary>
    /// <param name="model">The float model (put in eval mode).</param>
    /// <param name="path">The .onnx file to write (atomically).</param>
    /// <param name="options">Calibration images, method, activation type and the layers kept in float32.</param>
    /// <param name="log">Where the calibration progress and the list of quantised layers go.</param>
    /// <param name="withPreprocessing">Take uint8 NHWC RGB and normalise inside the graph.</param>
    /// <param name="argmax">Output class ids instead of logits.</param>
    /// <returns>What was quantised and what stayed float.</returns>
    public static QuantizationSummary WriteInt8(SegmentationModel model, string path, Int8Options options, ILogger log,
        bool withPreprocessing = false, bool argmax = false)
    {
        var images = new CalibrationImages(options.CalibrationFolder, options.CalibrationCount);
        var floatModel = OnnxExport.Build(model, withPreprocessing, argmax).ToModel();
        var (quantised, summary) = Quantise(floatModel, images, options, log);
        AtomicFile.Write(path, s => quantised.WriteTo(s));
        return summary;
    }

    /// <summary>The QDQ model from a float one (which is left as it was).</summary>
    internal static (ModelProto Model, QuantizationSummary Summary) Quantise(ModelProto floatModel, CalibrationImages images, Int8Options options, ILogger log)
    {
        var plan = QdqPlan.Make(floatModel.Graph, options.KeepFloat);
        log.LogInformation("int8: calibrating {Values} activations on {Images} image(s) from {Folder} ({Method})",
            plan.Values.Count, images.Files.Count, options.CalibrationFolder, options.Method.ToString().ToLowerInvariant());
        var stats = OrtCalibrator.Measure(floatModel, plan.Values, images, options.Method, log);
        var ranges = stats.ToDictionary(kv => kv.Key, kv => kv.Value.Range(options.Method, options.Percentile), StringComparer.Ordinal);
        var model = floatModel.Clone();
        QdqRewriter.Rewrite(model.Graph, plan, ranges, options.Activations);
        var summary = new QuantizationSummary(plan.QuantisedConvs, plan.FloatConvs, plan.QuantisedAdds, images.Files.Count);
        log.LogInformation("int8: {Count} convolution(s) quantised (weights int8 per output channel, activations {Type} per tensor): {Names}",
            summary.QuantisedConvs.Count, options.Activations.ToString().ToLowerInvariant(), string.Join(", ", summary.QuantisedConvs));
        log.LogInformation("int8: {Adds} residual add(s) quantised; kept in float32: {Names}; resizes, pooling and concatenations run in float32",
            summary.QuantisedAdds, summary.FloatConvs.Count == 0 ? "no convolution" : string.Join(", ", summary.FloatConvs));
        return (model, summary);
    }

    /// <summary>Writes a float16 graph (weights and activations float16; input and output stay float32) to <paramref name="path"/>.</summary>
    /// <param name="model">The float model (put in eval mode).</param>
    /// <param name="path">The .onnx file to write (atomically).</param>
    /// <param name="withPreprocessing">Take uint8 NHWC RGB and normalise inside the graph.</param>
    /// <param name="argmax">Output class ids instead of logits.</param>
    public static void WriteFloat16(SegmentationModel model, string path, bool withPreprocessing = false, bool argmax = false)
    {
        var m = OnnxExport.Build(model, withPreprocessing, argmax).ToModel();
        Float16Rewriter.Rewrite(m.Graph);
        AtomicFile.Write(path, s => m.WriteTo(s));
    }
}
