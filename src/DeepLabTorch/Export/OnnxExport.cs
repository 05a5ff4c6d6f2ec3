using DeepLabTorch.Data;
using DeepLabTorch.Export.Onnx;
using DeepLabTorch.Models;

namespace DeepLabTorch.Export;

/// <summary>
/// Any model of the catalogue as an ONNX file: the input (float NCHW, or uint8 NHWC RGB normalised inside the graph),
/// the network's eval-mode logits (DeepLabV3+ or a face-parsing network), and the output (logits, or class ids).
/// </summary>
public static class OnnxExport
{
    /// <summary>The submodule of the model at a state_dict path, of the kind the graph writer expects there.</summary>
    internal static T Module<T>(TorchSharp.torch.nn.Module root, string path) where T : TorchSharp.torch.nn.Module =>
        Extensions.ModuleExtensions.GetSubmodule(root, path) as T ?? throw new InvalidOperationException($"the model has no {typeof(T).Name} at '{path}'");

    /// <summary>Writes <paramref name="model"/> (put in eval mode) to an ONNX file at <paramref name="path"/>, BatchNorms folded.</summary>
    /// <param name="model">Any model of the catalogue, for example a loaded <see cref="LoadedModel.Model"/>.</param>
    /// <param name="path">The .onnx file to write.</param>
    /// <param name="withPreprocessing">Take uint8 NHWC RGB and normalise inside the graph, instead of normalised float NCHW.</param>
    /// <param name="argmax">Output class ids [N,H,W] instead of logits [N,C,H,W].</param>
    public static void Write(SegmentationModel model, string path, bool withPreprocessing = false, bool argmax = false) =>
        Build(model, withPreprocessing, argmax).Save(path);

    /// <summary>The float32 graph, not yet written: its Conv nodes are named after their modules' state_dict paths.</summary>
    internal static OnnxGraphBuilder Build(SegmentationModel model, bool withPreprocessing = false, bool argmax = false)
    {
        model.eval();
        var g = new OnnxGraphBuilder();
        g.NameModulesOf(model);
        string input = withPreprocessing
            ? g.Preprocess(g.Input("input", OnnxType.UInt8, "N", "H", "W", 3L), ImageTensor.Mean, ImageTensor.Std)
            : g.Input("input", OnnxType.Float, "N", 3L, "H", "W");
        var full = model is DeepLabV3Plus deeplab ? DeepLabOnnxExporter.Logits(g, deeplab, input) : FaceParsingOnnxExporter.Logits(g, model, input);
        long classes = model.Config.NumClasses;
        if (argmax) g.Output(g.ArgMax(full, 1), "labels", OnnxType.Int64, "N", "H", "W");
        else g.Output(full, "logits", OnnxType.Float, "N", classes, "H", "W");
        return g;
    }
}
