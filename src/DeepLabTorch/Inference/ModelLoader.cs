using DeepLabTorch.Checkpoints;
using DeepLabTorch.Data;
using DeepLabTorch.Models;
using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Inference;

/// <summary>A model ready for inference (eval mode, on its device) and what the weight file said about it.</summary>
public sealed class LoadedModel : IDisposable
{
    public LoadedModel(DeepLabV3Plus model, IReadOnlyList<string> classNames, CheckpointInfo? info, Device device)
    {
        Model = model;
        ClassNames = classNames;
        Info = info;
        Device = device;
    }

    public DeepLabV3Plus Model { get; }
    public ModelConfig Config => Model.Config;
    public IReadOnlyList<string> ClassNames { get; }
    public CheckpointInfo? Info { get; }
    public Device Device { get; }

    /// <summary>Mask colours: the VOC map by index, except that a class named like a VOC class takes that class's colour.</summary>
    public byte[] Palette => ModelLoader.PaletteFor(ClassNames);

    public void Dispose() => Model.Dispose();
}

/// <summary>Builds the model a weight file describes (our checkpoint, plain safetensors or a reference .pth) and loads it.</summary>
public static class ModelLoader
{
    /// <summary>
    /// Our checkpoints carry backbone, output stride, classes and class names. Other files take the flags,
    /// or are recognised from their keys (backbone) and the classifier's shape (number of classes).
    /// </summary>
    public static LoadedModel Load(string weights, string? backbone = null, int? outputStride = null, int? numClasses = null,
        Device? device = null, Action<string>? log = null)
    {
        if (!File.Exists(weights)) throw new UserException($"{weights}: no such weights file");
        log ??= _ => { };
        device ??= torch.CPU;
        var sd = WeightFiles.LoadStateDict(weights, out var info);
        try
        {
            if (info?.Model is null)
            {
                backbone ??= GuessBackbone(sd) ?? "mobilenet";
                numClasses ??= GuessClasses(sd);
            }
            var m = WeightFiles.ResolveModel(weights, info, backbone, outputStride, numClasses);
            var config = new ModelConfig(m.Backbone, m.OutputStride, m.NumClasses);
            var model = ModelFactory.Create(config);
            try
            {
                // Inference never re-initialises the classifier: its shape must match the file.
                WeightLoader.Apply(model, sd, weights, expectedClasses: null, model.ClassifierPrefix, log,
                    ModelCatalog.Get(m.Backbone).AliasMap, info);
                PrepareForInference(model, device);
                var names = m.ClassNames is { Count: > 0 } n && n.Count == m.NumClasses ? n : DefaultClassNames(m.NumClasses);
                return new LoadedModel(model, names, info, device);
            }
            catch
            {
                model.Dispose();
                throw;
            }
        }
        finally
        {
            foreach (var t in sd.Values) t.Dispose();
        }
    }

    /// <summary>
    /// Eval mode on the device. On the CPU the weights go channels-last (unless channelsLast is false),
    /// which makes oneDNN run every convolution in NHWC: 10–25% faster at batch 1 and ~25% at batch 4
    /// (scripts/bench.sh infer). Training keeps the default layout: there the backward pass was slower.
    /// </summary>
    public static void PrepareForInference(DeepLabV3Plus model, Device device, bool channelsLast = true)
    {
        model.eval();
        if (device.type != DeviceType.CPU) model.to(device);
        else if (channelsLast) model.ToChannelsLast();
    }

    /// <summary>mobilenet / resnet / xception from the reference's key names; null when none fits.</summary>
    public static string? GuessBackbone(IReadOnlyDictionary<string, torch.Tensor> sd)
    {
        if (sd.Keys.Any(k => k.StartsWith("backbone.features.", StringComparison.Ordinal) || k.StartsWith("backbone.low_level_features.", StringComparison.Ordinal)))
            return "mobilenet";
        if (sd.Keys.Any(k => k.StartsWith("backbone.layer4.", StringComparison.Ordinal))) return "resnet";
        if (sd.Keys.Any(k => k.StartsWith("backbone.block", StringComparison.Ordinal))) return "xception";
        return null;
    }

    /// <summary>The classifier's output channels (decoder.last_conv.8.weight in the reference layout), if present.</summary>
    public static int? GuessClasses(IReadOnlyDictionary<string, torch.Tensor> sd)
    {
        var key = $"decoder.last_conv.{Decoder.ClassifierIndex}.weight";
        return sd.TryGetValue(key, out var w) && w.dim() == 4 ? (int)w.size(0) : null;
    }

    /// <summary>VOC names for 21 classes, background/person for 2, else class0..classN-1.</summary>
    public static IReadOnlyList<string> DefaultClassNames(int numClasses) => numClasses switch
    {
        21 => VocClasses.Names,
        2 => new[] { "background", "person" },
        _ => Enumerable.Range(0, numClasses).Select(i => i == 0 ? "background" : $"class{i}").ToArray(),
    };

    public static byte[] PaletteFor(IReadOnlyList<string> classNames)
    {
        var voc = Data.Palette.Voc;
        var palette = (byte[])voc.Clone();
        var vocNames = VocClasses.Names;
        for (int i = 0; i < classNames.Count && i < 256; i++)
        {
            int j = -1;
            for (int k = 0; k < vocNames.Count; k++)
                if (string.Equals(vocNames[k], classNames[i], StringComparison.OrdinalIgnoreCase)) { j = k; break; }
            if (j < 0) continue;
            palette[3 * i] = voc[3 * j];
            palette[3 * i + 1] = voc[3 * j + 1];
            palette[3 * i + 2] = voc[3 * j + 2];
        }
        return palette;
    }

    /// <summary>A class given by index or by name (case-insensitive).</summary>
    public static int ResolveClass(string spec, IReadOnlyList<string> classNames, string flag)
    {
        if (int.TryParse(spec, out var i))
        {
            if (i < 0 || i >= classNames.Count) throw new UserException($"{flag} {i}: the model has classes 0..{classNames.Count - 1}");
            return i;
        }
        for (int k = 0; k < classNames.Count; k++)
            if (string.Equals(classNames[k], spec, StringComparison.OrdinalIgnoreCase)) return k;
        throw new UserException($"{flag} '{spec}' is not a class of this model ({string.Join(", ", classNames)})");
    }
}
