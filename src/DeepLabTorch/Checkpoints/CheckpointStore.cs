using System.Globalization;
using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Checkpoints;

/// <summary>
/// Training checkpoints: one safetensors file with the model's state_dict, the optimizer state under
/// "optimizer.", the torch RNG state as "rng.torch", and a CheckpointInfo in the header metadata.
/// </summary>
internal static class CheckpointStore
{
    public const string OptimizerPrefix = "optimizer.";
    public const string RngTensor = "rng.torch";
    public const string MetadataKey = "deeplabtorch";
    public const string FormatVersionKey = "format_version";

    /// <summary>
    /// Writes model, optimizer and info atomically. When info.Rng.Torch is null the current
    /// torch.get_rng_state() is stored.
    /// </summary>
    public static void Save(string path, torch.nn.Module model, torch.optim.Optimizer? optimizer, CheckpointInfo info)
    {
        using var scope = torch.NewDisposeScope();
        var tensors = new Dictionary<string, torch.Tensor>();
        foreach (var (k, t) in model.StateDictInOrder())
        {
            if (k.StartsWith(OptimizerPrefix, StringComparison.Ordinal) || k.StartsWith("rng.", StringComparison.Ordinal))
                throw new ArgumentException($"model state key '{k}' collides with the checkpoint's reserved prefixes");
            tensors[k] = t;
        }
        IReadOnlyDictionary<string, double>? scalars = null;
        if (optimizer is not null)
        {
            var (ot, os) = OptimizerState.Save(optimizer);
            foreach (var (k, t) in ot) tensors[OptimizerPrefix + k] = t;
            scalars = os;
        }
        var rng = info.Rng ?? new CheckpointRng();
        byte[] rngBytes = rng.Torch ?? torch.get_rng_state().ToArray<byte>();
        tensors[RngTensor] = torch.tensor(rngBytes);

        var stored = info with { FormatVersion = CheckpointInfo.CurrentFormatVersion, OptimizerScalars = scalars, Source = "deeplabtorch" };
        var metadata = new Dictionary<string, string>
        {
            [FormatVersionKey] = CheckpointInfo.CurrentFormatVersion.ToString(CultureInfo.InvariantCulture),
            [MetadataKey] = stored.ToJson(),
        };
        Safetensors.Write(path, tensors, metadata);
    }

    /// <summary>
    /// Restores model weights (strict: every key and shape must match), the optimizer state when an
    /// optimizer is given, and the torch RNG state when restoreRng. Returns the info with Rng.Torch filled.
    /// keys (the model's aliases, classifier and description) only sharpen the error message.
    /// </summary>
    public static CheckpointInfo Load(string path, torch.nn.Module model, torch.optim.Optimizer? optimizer, bool restoreRng = true,
        StateDictKeys? keys = null)
    {
        using var file = Safetensors.Read(path);
        var info = ReadInfo(path, file.Metadata)
            ?? throw new CheckpointException(path, "not a DeepLabTorch checkpoint (no training metadata); use it as --weights or --init-weights instead");
        var modelState = new Dictionary<string, torch.Tensor>();
        var optState = new Dictionary<string, torch.Tensor>();
        foreach (var (k, t) in file.Tensors)
        {
            if (k.StartsWith(OptimizerPrefix, StringComparison.Ordinal)) optState[k[OptimizerPrefix.Length..]] = t;
            else if (k != RngTensor) modelState[k] = t;
        }
        // Our own checkpoints: no aliases, and the classifier must fit (resuming trains the same model).
        StateDictLoader.Load(model, modelState, path, new StateDictLoadOptions { Keys = keys ?? StateDictKeys.Plain });

        if (optimizer is not null)
        {
            try { OptimizerState.Load(optimizer, optState, info.OptimizerScalars ?? new Dictionary<string, double>()); }
            catch (ArgumentException e) { throw new CheckpointException(path, "the optimizer state does not match: " + e.Message, e); }
        }

        byte[]? rngBytes = null;
        if (file.Tensors.TryGetValue(RngTensor, out var rngT))
        {
            if (rngT.dtype != ScalarType.Byte) throw new CheckpointException(path, $"'{RngTensor}' has dtype {rngT.dtype}, expected U8");
            rngBytes = rngT.ToArray<byte>();
            if (restoreRng)
            {
                try { torch.set_rng_state(rngT); }
                catch (Exception e) when (e is not OutOfMemoryException) { throw new CheckpointException(path, "invalid torch RNG state: " + e.Message, e); }
            }
        }
        return info with { Rng = (info.Rng ?? new CheckpointRng()) with { Torch = rngBytes } };
    }

    /// <summary>Our CheckpointInfo from a safetensors header, or null for a plain safetensors file.</summary>
    public static CheckpointInfo? ReadInfo(string path, IReadOnlyDictionary<string, string> metadata)
    {
        if (!metadata.TryGetValue(MetadataKey, out var json)) return null;
        if (metadata.TryGetValue(FormatVersionKey, out var v) &&
            (!int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var version) || version > CheckpointInfo.CurrentFormatVersion))
            throw new CheckpointException(path, $"checkpoint format version '{v}' is not supported (this program writes {CheckpointInfo.CurrentFormatVersion})");
        return CheckpointInfo.FromJson(json, path);
    }

    /// <summary>Only the metadata (the tensors are not read).</summary>
    public static CheckpointInfo? ReadInfo(string path) => ReadInfo(path, Safetensors.ReadLayout(path).Metadata);
}

/// <summary>
/// File names in a run folder: "last.safetensors", "best.safetensors" and periodic
/// "epoch-0005.safetensors", of which --keep N keeps the newest N.
/// </summary>
internal static class CheckpointFiles
{
    public const string Extension = ".safetensors";
    public static string Last(string runDir) => Path.Combine(runDir, "last" + Extension);
    public static string Best(string runDir) => Path.Combine(runDir, "best" + Extension);
    public static string Periodic(string runDir, int epoch) => Path.Combine(runDir, $"epoch-{epoch.ToString("D4", CultureInfo.InvariantCulture)}{Extension}");

    /// <summary>Periodic checkpoints in the folder, oldest first, with their epochs.</summary>
    public static IReadOnlyList<(int Epoch, string Path)> ListPeriodic(string runDir)
    {
        if (!Directory.Exists(runDir)) return Array.Empty<(int, string)>();
        var list = new List<(int, string)>();
        foreach (var f in Directory.EnumerateFiles(runDir, "epoch-*" + Extension))
        {
            var stem = Path.GetFileNameWithoutExtension(f)["epoch-".Length..];
            if (int.TryParse(stem, NumberStyles.None, CultureInfo.InvariantCulture, out var e)) list.Add((e, f));
        }
        return list.OrderBy(x => x.Item1).ToList();
    }

    /// <summary>Deletes all but the newest `keep` periodic checkpoints (keep 0 deletes them all); returns the deleted paths.</summary>
    public static IReadOnlyList<string> Prune(string runDir, int keep)
    {
        if (keep < 0) throw new UserException($"--keep must be 0 or more, got {keep}");
        var all = ListPeriodic(runDir);
        var deleted = new List<string>();
        for (int i = 0; i < all.Count - keep; i++)
        {
            File.Delete(all[i].Path);
            deleted.Add(all[i].Path);
        }
        return deleted;
    }
}
