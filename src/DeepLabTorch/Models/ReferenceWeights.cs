using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Models;

/// <summary>
/// The reference implementation's view of a model's weights: its state_dict with alias keys, and
/// loading a state_dict it wrote. Kept out of DeepLabV3Plus, which knows nothing of file formats.
/// </summary>
public static class ReferenceWeights
{
    /// <summary>
    /// state_dict in PyTorch order plus the reference's alias keys, in the reference's order (what the
    /// reference's own state_dict() returns). The tensors are the model's own: do not dispose them.
    /// </summary>
    public static Dictionary<string, Tensor> ReferenceStateDict(this DeepLabV3Plus model)
    {
        var own = model.StateDictInOrder();
        var entry = ModelCatalog.Get(model.Config.Backbone);
        if (entry.ReferenceAliases is null) return own;
        var result = new Dictionary<string, Tensor>();
        foreach (var (k, t) in own.Where(kv => kv.Key.StartsWith("backbone.", StringComparison.Ordinal))) result[k] = t;
        foreach (var (alias, canonical) in entry.AliasesFor(own.Keys)) result[alias] = own[canonical];
        foreach (var (k, t) in own.Where(kv => !kv.Key.StartsWith("backbone.", StringComparison.Ordinal))) result[k] = t;
        return result;
    }

    /// <summary>
    /// Loads a state_dict written by the reference implementation (or by us): alias keys are accepted
    /// in place of canonical ones, and the num_batches_tracked of a BatchNorm whose statistics are
    /// loaded defaults to 0 when absent (PyTorch before 0.4.1). With strict, other missing or unexpected
    /// keys are errors; shape mismatches always are. With keepClassifier the file's classifier is
    /// ignored and the model's own kept (fine-tuning for another number of classes).
    /// </summary>
    public static void LoadReferenceStateDict(this DeepLabV3Plus model, IReadOnlyDictionary<string, Tensor> sd, bool strict = true, bool keepClassifier = false)
    {
        var aliases = ModelCatalog.Get(model.Config.Backbone).AliasMap;
        var own = model.StateDictInOrder();
        var mapped = new Dictionary<string, Tensor>();
        var classifier = model.ClassifierPrefix + ".";
        foreach (var (k, t) in sd)
        {
            if (keepClassifier && k.StartsWith(classifier, StringComparison.Ordinal)) continue;
            if (aliases.TryGetValue(k, out var canonical))
            {
                // The canonical key wins when both are present: in the reference they are one tensor.
                if (!sd.ContainsKey(canonical)) mapped[canonical] = t;
            }
            else mapped[k] = t;
        }
        if (keepClassifier)
            foreach (var (k, t) in own)
                if (k.StartsWith(classifier, StringComparison.Ordinal)) mapped[k] = t;
        using var scope = NewDisposeScope();
        foreach (var (k, t) in own)
            if (!mapped.ContainsKey(k) && k.EndsWith(".num_batches_tracked", StringComparison.Ordinal) &&
                mapped.ContainsKey(k[..^"num_batches_tracked".Length] + "running_mean"))
                mapped[k] = zeros(t.shape, t.dtype); // only for a BatchNorm being loaded: a partial load leaves the others alone
        try
        {
            model.LoadStateDictChecked(mapped, strict);
        }
        catch (ArgumentException e)
        {
            var c = model.Config;
            throw new UserException($"the weights do not fit DeepLabV3+ ({c.Backbone}, output stride {c.OutputStride}, {c.NumClasses} classes): {e.Message}", e);
        }
    }
}
