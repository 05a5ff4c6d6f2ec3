using DeepLabTorch.Data;
using DeepLabTorch.Export.Onnx;
using DeepLabTorch.Models;
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
public static class DeepLabOnnxExporter
{
    public static void Export(DeepLabV3Plus model, string path, bool withPreprocessing = false, bool argmax = false)
    {
        model.eval();
        var g = new OnnxGraphBuilder();
        string input = withPreprocessing
            ? g.Preprocess(g.Input("input", OnnxType.UInt8, "N", "H", "W", 3L), ImageTensor.Mean, ImageTensor.Std)
            : g.Input("input", OnnxType.Float, "N", 3L, "H", "W");
        var (high, low) = model.Config.Backbone switch
        {
            "mobilenet" => MobileNet(g, model, input),
            "xception" => Xception(g, model, input),
            "resnet" => ResNet(g, model, input),
            var b => throw new UserException($"ONNX export does not know the backbone '{b}'"),
        };
        var asppOut = Aspp(g, model, high);
        var logits = Decoder(g, model, asppOut, low);
        var full = g.ResizeLike(logits, input, model.Config.AlignCorners);
        long classes = model.Config.NumClasses;
        if (argmax) g.Output(g.ArgMax(full, 1), "labels", OnnxType.Int64, "N", "H", "W");
        else g.Output(full, "logits", OnnxType.Float, "N", classes, "H", "W");
        g.Save(path);
    }

    private static T Sub<T>(nn.Module root, string path) where T : nn.Module =>
        root.GetSubmodule(path) as T ?? throw new InvalidOperationException($"the model has no {typeof(T).Name} at '{path}'");

    private static (string high, string low) MobileNet(OnnxGraphBuilder g, DeepLabV3Plus model, string x)
    {
        var features = Sub<Sequential>(model, "backbone.features");
        // features.0: stem conv (own padding 1), BatchNorm, ReLU6.
        string h = g.Relu6(ConvBn(g, model, "backbone.features.0.0", "backbone.features.0.1", x));
        string? low = null;
        for (int i = 1; i < features.Count; i++)
        {
            h = InvertedResidual(g, model, $"backbone.features.{i}", h);
            if (i == Architecture.MobileNetLowLevelModules - 1) low = h;
        }
        return (h, low ?? throw new InvalidOperationException("MobileNetV2 is shorter than its low-level split"));
    }

    private static string InvertedResidual(OnnxGraphBuilder g, nn.Module model, string prefix, string x)
    {
        var seq = Sub<Sequential>(model, prefix + ".conv");
        Func<int, Conv2d> conv = k => Sub<Conv2d>(model, $"{prefix}.conv.{k}");
        Func<int, BatchNorm> bn = k => Sub<BatchNorm>(model, $"{prefix}.conv.{k}");
        Conv2d first = conv(0), last;
        string y;
        if (seq.Count == 5)
        {
            // expansion 1: depthwise (own symmetric padding), BN, ReLU6, pointwise, BN.
            y = g.Relu6(g.ConvBn(x, first, bn(1)));
            last = conv(3);
            y = g.ConvBn(y, last, bn(4));
        }
        else
        {
            // The reference pads the block input (fixed padding for the 3×3 depthwise) before the expansion.
            var dw = conv(3);
            var (begin, end) = Layers.FixedPadding(3, dw.dilation![0]);
            var padded = g.Pad(x, begin, end, begin, end);
            y = g.Relu6(g.ConvBn(padded, first, bn(1)));
            y = g.Relu6(g.ConvBn(y, dw, bn(4)));
            last = conv(6);
            y = g.ConvBn(y, last, bn(7));
        }
        var depthwise = seq.Count == 5 ? first : conv(3);
        bool residual = depthwise.stride!.All(v => v == 1) && first.weight.shape[1] * (seq.Count == 5 ? first.groups : 1) == last.weight.shape[0];
        return residual ? g.Add(y, x) : y;
    }

    private static (string high, string low) Xception(OnnxGraphBuilder g, nn.Module model, string x)
    {
        string h = ConvBnRelu(g, model, "backbone.conv1", "backbone.bn1", x);
        h = ConvBnRelu(g, model, "backbone.conv2", "backbone.bn2", h);
        string low = g.Relu(XceptionBlock(g, model, "backbone.block1", h));
        h = low;
        for (int i = 2; model.GetSubmodule($"backbone.block{i}") is not null; i++)
            h = XceptionBlock(g, model, $"backbone.block{i}", h);
        h = g.Relu(h);
        for (int i = 3; i <= 5; i++)
            h = g.Relu(SeparableConvBn(g, model, $"backbone.conv{i}", $"backbone.bn{i}", h));
        return (h, low);
    }

    /// <summary>Xception's separable conv (depthwise, BN, pointwise) and the BN after it: two folded Convs.</summary>
    private static string SeparableConvBn(OnnxGraphBuilder g, nn.Module model, string sep, string bn, string x)
    {
        var depthwise = ConvBn(g, model, sep + ".conv1", sep + ".bn", x);
        return ConvBn(g, model, sep + ".pointwise", bn, depthwise);
    }

    private static string XceptionBlock(OnnxGraphBuilder g, nn.Module model, string prefix, string x)
    {
        var rep = Sub<Sequential>(model, prefix + ".rep");
        // A block that starts with ReLU applies it in place to its input, so the shortcut sees relu(x) too.
        int k = 0;
        if (rep[0] is ReLU)
        {
            x = g.Relu(x);
            k = 1;
        }
        string h = x;
        for (; k < rep.Count; k++)
        {
            switch (rep[k])
            {
                case ReLU:
                    h = g.Relu(h);
                    break;
                case Models.Backbones.SeparableConv2d:
                    h = SeparableConvBn(g, model, $"{prefix}.rep.{k}", $"{prefix}.rep.{k + 1}", h);
                    k++; // the BatchNorm that follows is folded into the pointwise conv
                    break;
                default:
                    throw new InvalidOperationException($"unexpected {rep[k].GetType().Name} at {prefix}.rep.{k}");
            }
        }
        string shortcut = model.GetSubmodule(prefix + ".skip") is not null
            ? ConvBn(g, model, prefix + ".skip", prefix + ".skipbn", x)
            : x;
        return g.Add(h, shortcut);
    }

    private static (string high, string low) ResNet(OnnxGraphBuilder g, nn.Module model, string x)
    {
        string h = ConvBnRelu(g, model, "backbone.conv1", "backbone.bn1", x);
        h = g.MaxPool(h, 3, 2, 1);
        string? low = null;
        for (int stage = 1; stage <= 4; stage++)
        {
            var layer = Sub<Sequential>(model, $"backbone.layer{stage}");
            for (int b = 0; b < layer.Count; b++)
                h = Bottleneck(g, model, $"backbone.layer{stage}.{b}", h);
            if (stage == 1) low = h;
        }
        return (h, low!);
    }

    private static string Bottleneck(OnnxGraphBuilder g, nn.Module model, string prefix, string x)
    {
        string h = ConvBnRelu(g, model, prefix + ".conv1", prefix + ".bn1", x);
        h = ConvBnRelu(g, model, prefix + ".conv2", prefix + ".bn2", h);
        h = ConvBn(g, model, prefix + ".conv3", prefix + ".bn3", h);
        string shortcut = model.GetSubmodule(prefix + ".downsample") is not null
            ? ConvBn(g, model, prefix + ".downsample.0", prefix + ".downsample.1", x)
            : x;
        return g.Relu(g.Add(h, shortcut));
    }

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
}
