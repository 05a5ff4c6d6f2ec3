using DeepLabTorch.Data;
using DeepLabTorch.Export.Onnx;
using DeepLabTorch.Export.Onnx.Proto;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;

namespace DeepLabTorch.Export.Quantization;

/// <summary>
/// Measures activation ranges by running the float graph (BatchNorm folded: the eval-mode model) in ONNX Runtime over
/// the calibration images, one image per run, with every value the plan needs made a graph output. Minmax takes one
/// pass; percentile and entropy take a second, whose histograms span the first pass's largest |x|. The input is what
/// predict feeds the network: RGB /255, ImageNet mean/std, NCHW float32 (uint8 NHWC RGB for a graph that
/// normalises inside).
/// </summary>
internal static class OrtCalibrator
{
    public static Dictionary<string, ActivationHistogram> Measure(ModelProto floatModel, IReadOnlyCollection<string> values,
        CalibrationImages images, CalibrationMethod method, ILogger log)
    {
        var probe = floatModel.Clone();
        var input = probe.Graph.Input[0];
        // The graph input itself (a quantised first convolution) is observed from the feed, not asked for as an output.
        bool observeInput = values.Contains(input.Name);
        var names = values.Where(v => v != input.Name).OrderBy(v => v, StringComparer.Ordinal).ToArray();
        foreach (var v in names.Where(v => probe.Graph.Output.All(o => o.Name != v)))
            probe.Graph.Output.Add(OnnxGraphBuilder.ValueInfo(v, OnnxType.Float, Array.Empty<OnnxDim>()).WithoutShape());
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_BASIC };
        using var session = new InferenceSession(probe.ToByteArray(), options);
        using var run = new RunOptions();
        bool rawRgb = input.Type.TensorType.ElemType == (int)OnnxType.UInt8;
        var stats = values.ToDictionary(v => v, _ => new ActivationHistogram(), StringComparer.Ordinal);
        int passes = method == CalibrationMethod.MinMax ? 1 : 2;
        for (int pass = 0; pass < passes; pass++)
        {
            foreach (var file in images.Files)
            {
                var (rgb, h, w) = CalibrationImages.Decode(file);
                var normalized = rawRgb ? null : Normalized(rgb, h, w);
                using var feed = normalized is null
                    ? OrtValue.CreateTensorValueFromMemory(rgb, new long[] { 1, h, w, 3 })
                    : OrtValue.CreateTensorValueFromMemory(normalized, new long[] { 1, 3, h, w });
                if (observeInput && normalized is not null) Observe(stats[input.Name], normalized, pass);
                using var results = session.Run(run, new[] { input.Name }, new[] { feed }, names);
                for (int k = 0; k < names.Length; k++) Observe(stats[names[k]], results[k].GetTensorDataAsSpan<float>(), pass);
            }
            log.LogInformation("calibration pass {Pass}/{Passes}: {Images} image(s), {Values} activations", pass + 1, passes, images.Files.Count, names.Length);
        }
        return stats;
    }

    private static void Observe(ActivationHistogram h, ReadOnlySpan<float> data, int pass)
    {
        if (pass == 0) h.ObserveRange(data);
        else h.ObserveHistogram(data);
    }

    private static float[] Normalized(byte[] rgb, int h, int w)
    {
        var chw = new float[3 * h * w];
        ImageTensor.Normalize(rgb, h, w, chw);
        return chw;
    }

    private static ValueInfoProto WithoutShape(this ValueInfoProto v)
    {
        v.Type.TensorType.Shape = null;
        return v;
    }
}
