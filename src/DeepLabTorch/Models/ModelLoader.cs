using DeepLabTorch.Checkpoints;
using DeepLabTorch.Data;
using DeepLabTorch.Extensions;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Models;

/// <summary>The number format inference runs in: float32, or bfloat16 weights and activations.</summary>
public enum Precision
{
    /// <summary>32-bit floats (the default).</summary>
    Float32,
    /// <summary>bfloat16 activations and weights (fast on CPUs with AVX512-BF16 or AMX, and on GPUs).</summary>
    BFloat16,
}

/// <summary>Parses --precision.</summary>
internal static class PrecisionNames
{
    public static Precision Parse(string text) => text.Trim().ToLowerInvariant() switch
    {
        "float32" or "fp32" or "f32" => Precision.Float32,
        "bf16" or "bfloat16" => Precision.BFloat16,
        _ => throw new UserException($"--precision must be float32 or bf16, got '{text}'"),
    };
}

/// <summary>What a caller asks of a weight file; unset fields come from the file.</summary>
public sealed record ModelRequest
{
    /// <summary>The backbone or network to build; null: what the file says or its keys show.</summary>
    public string? Backbone { get; init; }
    /// <summary>The output stride; null: the file's, else 16.</summary>
    public int? OutputStride { get; init; }
    /// <summary>The class count; null: the classifier's in the file.</summary>
    public int? NumClasses { get; init; }
    /// <summary>A classifier trained for another number of classes is re-initialised (fine-tuning) instead of refused.</summary>
    public bool NewClassifier { get; init; }
}

/// <summary>A model built from a weight file, and what the file said about it.</summary>
public sealed class LoadedModel : IDisposable
{
    internal LoadedModel(SegmentationModel model, IReadOnlyList<string>? fileClassNames, CheckpointInfo? info, StateDictLoadReport report)
    {
        Model = model;
        FileClassNames = fileClassNames;
        Info = info;
        Report = report;
    }

    /// <summary>The model with the file's weights; disposed with this object.</summary>
    public SegmentationModel Model { get; }
    /// <summary>The model's backbone, output stride and class count.</summary>
    public ModelConfig Config => Model.Config;
    /// <summary>The class names the file recorded (our checkpoints), or null.</summary>
    public IReadOnlyList<string>? FileClassNames { get; }
    /// <summary>The file's class names, else VOC names for 21 classes, background/person for 2, class0..N otherwise.</summary>
    /// <summary>The file's class names; else, for a 19-class face-parsing network (a reference .pth), CelebAMask-HQ's; else the defaults for the count.</summary>
    public IReadOnlyList<string> ClassNames => FileClassNames
        ?? (ModelCatalog.IsNetwork(Config.Backbone) && Config.NumClasses == Data.CelebAMaskHq.ClassNames.Count ? Data.CelebAMaskHq.ClassNames : ModelLoader.DefaultClassNames(Config.NumClasses));
    internal CheckpointInfo? Info { get; }
    internal StateDictLoadReport Report { get; }

    /// <summary>Mask colours: the VOC map by index, except that a class named like a VOC class takes that class's colour.</summary>
    public byte[] Palette => ModelLoader.PaletteFor(ClassNames);

    /// <summary>Disposes the model.</summary>
    public void Dispose() => Model.Dispose();
}

/// <summary>
/// The one way from a weight file (our checkpoint, a safetensors state_dict, a reference .pth) to a
/// model, used by train --init-weights, eval, export, predict and matte. Our checkpoints say what they
/// hold, and a flag that contradicts them is an error naming both; other files are recognised from
/// their keys (ModelCatalog) and the classifier's shape.
/// </summary>
public static class ModelLoader
{
    /// <summary>Loads a weight file into the model it describes, in train mode on the CPU.</summary>
    /// <param name="path">Our checkpoint, a safetensors state_dict, or a reference .pth/.pth.tar file.</param>
    /// <param name="request">Overrides of what the file says (backbone, output stride, class count); a contradiction is an error naming both.</param>
    /// <param name="log">Where the loader's notes go (a re-initialised classifier, a tolerated key; see StateDictLoadOptions.Logger).</param>
    public static LoadedModel Load(string path, ModelRequest? request = null, ILogger? log = null)
    {
        request ??= new ModelRequest();
        var sd = WeightFiles.LoadStateDict(path, out var info);
        try
        {
            var m = Resolve(path, info, sd, request);
            var model = ModelFactory.Build(new ModelConfig(m.Backbone, m.OutputStride, m.NumClasses));
            try
            {
                var report = StateDictLoader.Load(model, sd, path, new StateDictLoadOptions
                {
                    Keys = model.LoadKeys(),
                    Classifier = request.NewClassifier ? ClassifierRule.ReinitialiseIfDifferent : ClassifierRule.MustFit,
                    Logger = log,
                });
                var names = m.ClassNames is { } n && n.Count == m.NumClasses ? n : null;
                return new LoadedModel(model, names, info, report);
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

    /// <summary>Load, then PrepareForInference: eval mode, on the device, channels-last on the CPU, in the precision asked for.</summary>
    public static LoadedModel LoadForInference(string path, ModelRequest? request, Device device, ILogger? log = null,
        Precision precision = Precision.Float32)
    {
        var loaded = Load(path, request, log);
        try
        {
            PrepareForInference(loaded.Model, device, precision: precision);
            return loaded;
        }
        catch
        {
            loaded.Dispose();
            throw;
        }
    }

    /// <summary>The model a file should be loaded into, given what the caller asks.</summary>
    internal static CheckpointModel Resolve(string path, CheckpointInfo? info, IReadOnlyDictionary<string, Tensor> sd, ModelRequest request)
    {
        if (request.Backbone is { } asked && !ModelCatalog.AllNames.Contains(asked, StringComparer.OrdinalIgnoreCase))
            throw new UserException($"--backbone {asked}: unknown backbone, expected one of {string.Join(", ", ModelCatalog.AllNames)}");
        if (info?.Model is not null)
            return WeightFiles.ResolveModel(path, info, request.Backbone, request.OutputStride, request.NumClasses);
        var recognised = ModelCatalog.RecogniseName(sd.Keys);
        if (recognised is not null) FlagContradiction.Backbone(request.Backbone, recognised, path);
        return new CheckpointModel(request.Backbone?.ToLowerInvariant() ?? recognised ?? "mobilenet", request.OutputStride ?? 16,
            request.NumClasses ?? ClassifierClasses(sd) ?? 21);
    }

    /// <summary>
    /// Eval mode on the device. On the CPU the weights go channels-last (unless channelsLast is false),
    /// which makes oneDNN run every convolution in NHWC: 10–25% faster at batch 1 and ~25% at batch 4
    /// (scripts/bench.sh infer). Training keeps the default layout: there the backward pass was slower.
    /// </summary>
    public static void PrepareForInference(SegmentationModel model, Device device, bool channelsLast = true, Precision precision = Precision.Float32,
        bool foldBatchNorm = true)
    {
        model.eval();
        // BatchNorm folded into the convs (the model is the caller's fresh copy, for inference only): on a
        // quiet machine bench infer measured batch 8 at 513² 20% faster in float32 and 15% in bf16, batch 1
        // 3–7% (docs/performance.md, Levers). Done in float64 from the float32 weights, before any cast,
        // so bf16 rounds the folded weights once.
        if (foldBatchNorm) BatchNormFolding.Fold(model);
        // bfloat16 weights: on CPUs with AVX512-BF16 (and on GPUs) convolutions run about twice as fast.
        // Inputs are cast on the way in and logits back to float32 on the way out (ForwardFloat32).
        if (precision == Precision.BFloat16) model.to(ScalarType.BFloat16);
        if (device.type != DeviceType.CPU) model.to(device);
        else if (channelsLast) model.ToChannelsLast();
    }

    /// <summary>The classifier's output channels (decoder.last_conv.8.weight in the reference layout), if present.</summary>
    internal static int? ClassifierClasses(IReadOnlyDictionary<string, Tensor> sd)
    {
        // DeepLabV3+'s classifier, else the main head of BiSeNet and STDC-Seg.
        foreach (var key in new[] { $"decoder.last_conv.{Decoder.ClassifierIndex}.weight", "conv_out.conv_out.weight" })
            if (sd.TryGetValue(key, out var w) && w.dim() == 4) return (int)w.size(0);
        return null;
    }

    /// <summary>VOC names for 21 classes, background/person for 2, else background, class1..classN-1.</summary>
    public static IReadOnlyList<string> DefaultClassNames(int numClasses) => ClassNames.Default(numClasses);

    /// <summary>The mask colours (768 bytes, RGB per class index) for these class names: the VOC map, a VOC class name taking its VOC colour.</summary>
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
    internal static int ResolveClass(string spec, IReadOnlyList<string> classNames, string flag)
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
