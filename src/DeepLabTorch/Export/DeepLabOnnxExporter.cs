using DeepLabTorch.Data;
using DeepLabTorch.Export.Onnx;
using DeepLabTorch.Models;
using DeepLabTorch.Models.Backbones;
using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Export;

/// <summary>
/// Writes an eval-mode DeepLabV3+ as an ONNX graph: the module tree is walked by its state_dict
/// names (so the graph mirrors forward), every conv+BatchNorm pair becomes one Conv with the
/// BatchNorm folded in, dropout disappears, and every resize takes its target size from a runtime
/// shape so N, H and W stay dynamic.
/// </summary>
internal static class DeepLabOnnxExporter
{
    public static void Export(DeepLabV3Plus model, string path, bool withPreprocessing = false, bool argmax = false) =>
        OnnxExport.Write(model, path, withPreprocessing, argmax);

    /// <summary>The logits at the input's size.</summary>
    public static string Logits(OnnxGraphBuilder g, DeepLabV3Plus model, string input)
    {
        // Each backbone writes its own graph (Backbone.WriteGraph); this class writes the head around it.
        var (high, low) = model.Backbone.WriteGraph(new BackboneGraph(g), input);
        var asppOut = Aspp(g, model, high);
        var logits = Decoder(g, model, asppOut, low);
        return g.ResizeLike(logits, input, model.Config.AlignCorners);
    }

    private static T Sub<T>(nn.Module root, string path) where T : nn.Module => OnnxExport.Module<T>(root, path);

    /// <summary>The conv and the BatchNorm at these module paths, folded into one Conv.</summary>
    private static string ConvBn(OnnxGraphBuilder g, nn.Module model, string conv, string bn, string x) =>
        g.ConvBn(x, Sub<Conv2d>(model, conv), Sub<BatchNorm>(model, bn));

    private static string ConvBnRelu(OnnxGraphBuilder g, nn.Module model, string conv, string bn, string x) =>
        g.Relu(ConvBn(g, model, conv, bn, x));

    private static string Aspp(OnnxGraphBuilder g, nn.Module model, string x)
    {
        var branches = new List<string>();
        for (int i = 1; i <= 4; i++) branches.Add(ConvBnRelu(g, model, $"aspp.aspp{i}.atrous_conv", $"aspp.aspp{i}.bn", x));
        var pooled = ConvBnRelu(g, model, "aspp.global_avg_pool.1", "aspp.global_avg_pool.2", g.GlobalAveragePool(x));
        // Upsampling a 1×1 map repeats its value in either corner mode.
        branches.Add(g.ResizeLike(pooled, x, alignCorners: true));
        return ConvBnRelu(g, model, "aspp.conv1", "aspp.bn1", g.Concat(branches, 1));
    }

    private static string Decoder(OnnxGraphBuilder g, DeepLabV3Plus model, string asppOut, string lowLevel)
    {
        var low = ConvBnRelu(g, model, "decoder.conv1", "decoder.bn1", lowLevel);
        var up = g.ResizeLike(asppOut, low, model.Config.AlignCorners);
        var h = g.Concat(new[] { up, low }, 1);
        h = ConvBnRelu(g, model, "decoder.last_conv.0", "decoder.last_conv.1", h);
        h = ConvBnRelu(g, model, "decoder.last_conv.4", "decoder.last_conv.5", h);
        return g.Conv(h, Sub<Conv2d>(model, "decoder.last_conv.8"));
    }

    /// <summary>The operations a backbone writes itself with, as ONNX nodes.</summary>
    private sealed class BackboneGraph(OnnxGraphBuilder g) : IBackboneGraph
    {
        public string ConvBn(string x, Conv2d conv, BatchNorm bn) => g.ConvBn(x, conv, bn);
        public string Relu(string x) => g.Relu(x);
        public string Relu6(string x) => g.Relu6(x);
        public string Add(string a, string b) => g.Add(a, b);
        public string MaxPool(string x, long kernel, long stride, long padding) => g.MaxPool(x, kernel, stride, padding);
        public string Pad(string x, long left, long right, long top, long bottom) => g.Pad(x, left, right, top, bottom);
    }
}
