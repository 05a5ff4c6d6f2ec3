using DeepLabTorch.Checkpoints;
using DeepLabTorch.Extensions;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Models;

/// <summary>
/// The reference implementation's view of a model's weights: its state_dict with alias keys, and the
/// key facts (aliases, classifier, description) that Checkpoints' one loader needs. Kept out of
/// DeepLabV3Plus, which knows nothing of file formats.
/// </summary>
internal static class ReferenceWeights
{
    /// <summary>
    /// state_dict in PyTorch order plus the reference's alias keys, in the reference's order (what the
    /// reference's own state_dict() returns). The tensors are the model's own: do not dispose them.
    /// </summary>
    public static Dictionary<string, Tensor> ReferenceStateDict(this SegmentationModel model)
    {
        var own = model.StateDictInOrder();
        // The whole networks' state_dicts are the references' as they are: no alias keys.
        if (ModelCatalog.IsNetwork(model.Config.Backbone)) return own;
        var entry = ModelCatalog.Get(model.Config.Backbone);
        if (entry.ReferenceAliases is null) return own;
        var result = new Dictionary<string, Tensor>();
        foreach (var (k, t) in own.Where(kv => kv.Key.StartsWith("backbone.", StringComparison.Ordinal))) result[k] = t;
        foreach (var (alias, canonical) in entry.AliasesFor(own.Keys)) result[alias] = own[canonical];
        foreach (var (k, t) in own.Where(kv => !kv.Key.StartsWith("backbone.", StringComparison.Ordinal))) result[k] = t;
        return result;
    }

    /// <summary>What the one loader needs to know of this model: the backbone's alias keys, the classifier and a name for messages.</summary>
    public static StateDictKeys LoadKeys(this SegmentationModel model)
    {
        var c = model.Config;
        var aliases = ModelCatalog.IsNetwork(c.Backbone) ? new Dictionary<string, string>(StringComparer.Ordinal) : ModelCatalog.Get(c.Backbone).AliasMap;
        return new StateDictKeys(aliases, model.ClassifierPrefixes[0], model.Description) { MoreClassifierPrefixes = model.ClassifierPrefixes.Skip(1).ToArray() };
    }

    /// <summary>
    /// Loads a state_dict written by the reference implementation (or by us) through Checkpoints'
    /// StateDictLoader: alias keys are accepted in place of ours, a missing num_batches_tracked is 0.
    /// With strict, other missing or unexpected keys are errors; shape mismatches always are. With
    /// keepClassifier a classifier of another shape keeps the model's initialisation (fine-tuning for
    /// another number of classes). source names the state_dict in the error (a CheckpointException).
    /// </summary>
    public static StateDictLoadReport LoadReferenceStateDict(this SegmentationModel model, IReadOnlyDictionary<string, Tensor> sd, bool strict = true,
        bool keepClassifier = false, string source = "state_dict", ILogger? log = null) =>
        StateDictLoader.Load(model, sd, source, new StateDictLoadOptions
        {
            Keys = model.LoadKeys(),
            Partial = !strict,
            Classifier = keepClassifier ? ClassifierRule.ReinitialiseIfDifferent : ClassifierRule.MustFit,
            Logger = log,
        });
}
