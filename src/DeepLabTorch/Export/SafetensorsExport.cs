using DeepLabTorch.Checkpoints;
using DeepLabTorch.Extensions;
using TorchSharp;

namespace DeepLabTorch.Export;

/// <summary>
/// Weights-only safetensors for deployment and for Python: reference key names, plus every alias
/// key the reference model also exposes (its load_state_dict is strict about them), no optimizer or RNG.
/// </summary>
public static class SafetensorsExport
{
    /// <summary>Writes a weights-only safetensors file (reference key names) from a state_dict.</summary>
    /// <param name="path">The file to write (atomically: a temporary file, renamed).</param>
    /// <param name="stateDict">Key → tensor, for example a model's <c>state_dict()</c>.</param>
    /// <param name="metadata">String pairs for the file's <c>__metadata__</c>.</param>
    /// <param name="aliases">alias key → canonical key; each alias is written as a copy of its canonical tensor.</param>
    public static void Write(string path, IReadOnlyDictionary<string, torch.Tensor> stateDict, IReadOnlyDictionary<string, string>? aliases = null,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        var tensors = new Dictionary<string, torch.Tensor>(StringComparer.Ordinal);
        foreach (var (k, t) in stateDict) tensors[k] = t;
        if (aliases is not null)
            foreach (var (alias, canonical) in aliases)
            {
                if (tensors.ContainsKey(alias)) continue;
                if (!stateDict.TryGetValue(canonical, out var t))
                    throw new ArgumentException($"alias '{alias}' points at '{canonical}', which the state dict does not hold");
                tensors[alias] = t;
            }
        var meta = new Dictionary<string, string> { ["format"] = "pt" };
        if (metadata is not null) foreach (var (k, v) in metadata) meta[k] = v;
        Safetensors.Write(path, tensors, meta);
    }
}
