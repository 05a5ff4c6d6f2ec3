using System.Globalization;
using DeepLabTorch.Export.Onnx;
using DeepLabTorch.Extensions;
using DeepLabTorch.Models;
using DeepLabTorch.Models.FaceParsing;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Export;

/// <summary>
/// The face-parsing networks (BiSeNet, STDC-Seg) as ONNX graphs of their eval-mode forward: the main head only,
/// every conv+BatchNorm pair one Conv with the BatchNorm folded in, the context path's nearest upsampling and the
/// output's bilinear upsampling (aligned corners) sized from runtime shapes, so N, H and W stay dynamic. The two
/// networks share the context path, fusion and head layout (cp.arm16/32, cp.conv_head32/16, cp.conv_avg, ffm,
/// conv_out) and differ in the backbone: ResNet-18 (cp.resnet) or STDCNet (cp.backbone.features).
/// </summary>
internal static class FaceParsingOnnxExporter
{
    /// <summary>The logits of the main head at the input's size.</summary>
    public static string Logits(OnnxGraphBuilder g, SegmentationModel model, string input)
    {
        var (feat8, feat16, feat32) = model switch
        {
            BiSeNet => ResNet18(g, model, input),
            StdcSeg stdc => StdcBackbone(g, model, stdc.Variant, input),
            _ => throw new ArgumentException($"{model.Description} is not a face-parsing network"),
        };
        // Context path: global context on the stride-32 features, refined and upsampled stage by stage.
        var global = ConvBnRelu(g, model, "cp.conv_avg", g.GlobalAveragePool(feat32));
        var sum32 = g.Add(Arm(g, model, "cp.arm32", feat32), global);
        var context16 = ConvBnRelu(g, model, "cp.conv_head32", g.ResizeNearestLike(sum32, feat16));
        var sum16 = g.Add(Arm(g, model, "cp.arm16", feat16), context16);
        var context8 = ConvBnRelu(g, model, "cp.conv_head16", g.ResizeNearestLike(sum16, feat8));
        // Feature fusion: the stride-8 features with the stride-8 context, re-weighted by a channel attention.
        var fused = ConvBnRelu(g, model, "ffm.convblk", g.Concat(new[] { feat8, context8 }, 1));
        var attention = g.Sigmoid(g.Conv(g.Relu(g.Conv(g.GlobalAveragePool(fused), Sub<Conv2d>(model, "ffm.conv1"))), Sub<Conv2d>(model, "ffm.conv2")));
        var weighted = g.Add(g.Mul(fused, attention), fused);
        var logits = g.Conv(ConvBnRelu(g, model, "conv_out.conv", weighted), Sub<Conv2d>(model, "conv_out.conv_out"));
        return g.ResizeLike(logits, input, alignCorners: true);
    }

    /// <summary>ResNet-18's stride-8, -16 and -32 features.</summary>
    private static (string, string, string) ResNet18(OnnxGraphBuilder g, nn.Module model, string input)
    {
        var x = g.Relu(g.ConvBn(input, Sub<Conv2d>(model, "cp.resnet.conv1"), Sub<BatchNorm>(model, "cp.resnet.bn1")));
        x = g.MaxPool(x, 3, 2, 1);
        var stages = new string[4];
        for (int s = 0; s < 4; s++)
        {
            for (int b = 0; b < 2; b++)
            {
                var p = $"cp.resnet.layer{s + 1}.{b}";
                var y = g.Relu(g.ConvBn(x, Sub<Conv2d>(model, p + ".conv1"), Sub<BatchNorm>(model, p + ".bn1")));
                y = g.ConvBn(y, Sub<Conv2d>(model, p + ".conv2"), Sub<BatchNorm>(model, p + ".bn2"));
                var skip = model.GetSubmodule(p + ".downsample") is null
                    ? x
                    : g.ConvBn(x, Sub<Conv2d>(model, p + ".downsample.0"), Sub<BatchNorm>(model, p + ".downsample.1"));
                x = g.Relu(g.Add(y, skip));
            }
            stages[s] = x;
        }
        return (stages[1], stages[2], stages[3]);
    }

    /// <summary>STDCNet's stride-8, -16 and -32 features: two strided ConvX, then the CatBottleneck stages.</summary>
    private static (string, string, string) StdcBackbone(OnnxGraphBuilder g, nn.Module model, StdcVariant variant, string input)
    {
        string Layer(int i) => "cp.backbone.features." + i.ToString(CultureInfo.InvariantCulture);
        var x = ConvBnRelu(g, model, Layer(0), input);
        x = ConvBnRelu(g, model, Layer(1), x);
        int index = 2;
        var stages = new List<string>();
        foreach (var blocks in StdcNet.BlocksPerStage(variant))
        {
            for (int j = 0; j < blocks; j++, index++) x = CatBottleneck(g, model, Layer(index), x, strided: j == 0);
            stages.Add(x);
        }
        return (stages[0], stages[1], stages[2]);
    }

    /// <summary>One STDC block: a chain of ConvX whose outputs are concatenated (the first pooled or strided in a stride-2 block).</summary>
    private static string CatBottleneck(OnnxGraphBuilder g, nn.Module model, string path, string x, bool strided)
    {
        var parts = new List<string>();
        var first = ConvBnRelu(g, model, path + ".conv_list.0", x);
        string previous;
        if (strided)
        {
            var down = g.ConvBn(first, Sub<Conv2d>(model, path + ".avd_layer.0"), Sub<BatchNorm>(model, path + ".avd_layer.1"));
            parts.Add(g.AveragePool(first, 3, 2, 1));
            previous = ConvBnRelu(g, model, path + ".conv_list.1", down);
        }
        else
        {
            parts.Add(first);
            previous = ConvBnRelu(g, model, path + ".conv_list.1", first);
        }
        parts.Add(previous);
        for (int i = 2; model.GetSubmodule($"{path}.conv_list.{i}") is not null; i++)
        {
            previous = ConvBnRelu(g, model, $"{path}.conv_list.{i}", previous);
            parts.Add(previous);
        }
        return g.Concat(parts, 1);
    }

    /// <summary>An attention refinement module: ConvBNReLU, then the features times the sigmoid of a pooled 1×1 conv + BatchNorm.</summary>
    private static string Arm(OnnxGraphBuilder g, nn.Module model, string path, string x)
    {
        var feat = ConvBnRelu(g, model, path + ".conv", x);
        var attention = g.Sigmoid(g.ConvBn(g.GlobalAveragePool(feat), Sub<Conv2d>(model, path + ".conv_atten"), Sub<BatchNorm>(model, path + ".bn_atten")));
        return g.Mul(feat, attention);
    }

    /// <summary>A conv + BatchNorm + ReLU module at this path (its children named conv and bn).</summary>
    private static string ConvBnRelu(OnnxGraphBuilder g, nn.Module model, string path, string x) =>
        g.Relu(g.ConvBn(x, Sub<Conv2d>(model, path + ".conv"), Sub<BatchNorm>(model, path + ".bn")));

    private static T Sub<T>(nn.Module root, string path) where T : nn.Module => OnnxExport.Module<T>(root, path);
}
