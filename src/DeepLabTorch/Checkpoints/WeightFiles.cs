using DeepLabTorch.Checkpoints.Pth;
using TorchSharp;

namespace DeepLabTorch.Checkpoints;

/// <summary>Reads model weights from any file users bring: our checkpoints, plain safetensors, .pth/.pth.tar.</summary>
internal static class WeightFiles
{
    public enum Kind { Safetensors, PyTorchZip }

    /// <summary>Sniffs the first bytes (not the extension): zip → torch.save, else safetensors.</summary>
    public static Kind Detect(string path)
    {
        if (Directory.Exists(path)) throw new CheckpointException(path, FolderMessage(path));
        if (!File.Exists(path)) throw new CheckpointException(path, "file not found");
        Span<byte> head = stackalloc byte[8];
        int n;
        using (var fs = File.OpenRead(path)) n = fs.Read(head);
        if (PthReader.LooksLikeZip(head[..n])) return Kind.PyTorchZip;
        if (n >= 1 && head[0] == 0x80 && (path.EndsWith(".pth", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".tar", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".pt", StringComparison.OrdinalIgnoreCase)))
            return Kind.PyTorchZip; // the reader explains that legacy pickles are not supported
        return Kind.Safetensors;
    }

    /// <summary>Extensions a weights file has: what a folder given as weights is searched for, to say which file was meant.</summary>
    public static readonly string[] Extensions = { ".safetensors", ".pth", ".pth.tar", ".pt", ".onnx" };

    /// <summary>"is a folder, not a weights file; it holds best.safetensors, last.safetensors": the files that look like weights, named.</summary>
    public static string FolderMessage(string folder)
    {
        var found = Directory.EnumerateFiles(folder)
            .Select(Path.GetFileName).OfType<string>()
            .Where(f => Extensions.Any(e => f.EndsWith(e, StringComparison.OrdinalIgnoreCase)))
            .Order(StringComparer.Ordinal).ToList();
        var listed = found.Count <= 8 ? string.Join(", ", found) : string.Join(", ", found.Take(8)) + $" and {found.Count - 8} more";
        return found.Count == 0
            ? $"is a folder, not a weights file, and holds no weights ({string.Join(" ", Extensions.Select(e => "*" + e))})"
            : $"is a folder, not a weights file; give one of the weights in it: {listed}";
    }

    /// <summary>
    /// The model weights by state_dict name (CPU tensors the caller must dispose). info is our
    /// checkpoint's metadata, what a .pth carried (epoch, best score), or null for plain safetensors.
    /// </summary>
    public static Dictionary<string, torch.Tensor> LoadStateDict(string path, out CheckpointInfo? info)
    {
        if (Detect(path) == Kind.PyTorchZip)
        {
            var sd = PthReader.LoadStateDict(path, out var pinfo);
            info = pinfo;
            return sd;
        }
        SafetensorsFile opened;
        try
        {
            opened = Safetensors.Read(path);
        }
        catch (CheckpointException e) when (e.Path == path)
        {
            // Not a zip, so it had to be safetensors: say both, so a wrong file is recognised as such.
            throw new CheckpointException(path, "neither a PyTorch .pth (zip) nor a valid safetensors file: " + e.Reason);
        }
        using var file = opened;
        info = CheckpointStore.ReadInfo(path, file.Metadata);
        var result = new Dictionary<string, torch.Tensor>(StringComparer.Ordinal);
        foreach (var name in file.Tensors.Keys.ToList())
        {
            // Our checkpoints also hold optimizer and RNG state: not weights.
            if (info is not null && (name.StartsWith(CheckpointStore.OptimizerPrefix, StringComparison.Ordinal) || name == CheckpointStore.RngTensor)) continue;
            var key = name.StartsWith("module.", StringComparison.Ordinal) ? name["module.".Length..] : name;
            result[key] = file.Take(name);
        }
        return result;
    }

    /// <summary>
    /// The model a weight file should be loaded into. Our checkpoints carry their config, and a flag
    /// that contradicts it is an error naming both values, except --num-classes, which asks for
    /// fine-tuning (the classifier is re-initialised). Other files take the flags or the defaults.
    /// </summary>
    public static CheckpointModel ResolveModel(string path, CheckpointInfo? info, string? backbone, int? outputStride, int? numClasses,
        string defaultBackbone = "mobilenet", int defaultOutputStride = 16, int defaultNumClasses = 21)
    {
        var m = info?.Model;
        if (m is null)
            return new CheckpointModel(backbone ?? defaultBackbone, outputStride ?? defaultOutputStride, numClasses ?? defaultNumClasses);
        FlagContradiction.Backbone(backbone, m.Backbone, path);
        FlagContradiction.OutputStride(outputStride, m.OutputStride, path);
        if (numClasses is not null && numClasses != m.NumClasses)
            return m with { NumClasses = numClasses.Value, ClassNames = null };
        return m;
    }
}
