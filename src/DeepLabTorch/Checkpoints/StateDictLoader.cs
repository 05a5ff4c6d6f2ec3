using DeepLabTorch.Extensions;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Checkpoints;

/// <summary>
/// What a model tells the loader about its state_dict: the other names files use for its tensors
/// (alias key → our key), the prefix of the classifier whose shape follows the number of classes, and
/// how to name the model in messages. The model's side supplies it; the loader knows no model.
/// </summary>
internal sealed record StateDictKeys(IReadOnlyDictionary<string, string> Aliases, string? ClassifierPrefix = null, string? Description = null)
{
    /// <summary>Further classifier prefixes, for models with several heads whose shapes follow the class count (BiSeNet, STDC-Seg).</summary>
    public IReadOnlyList<string> MoreClassifierPrefixes { get; init; } = Array.Empty<string>();

    /// <summary>No aliases, no classifier: every key must match exactly.</summary>
    public static StateDictKeys Plain { get; } = new(new Dictionary<string, string>(StringComparer.Ordinal));

    /// <summary>True for the classifier's own keys ("decoder.last_conv.8.weight" under "decoder.last_conv.8").</summary>
    public bool IsClassifier(string key)
    {
        foreach (var p in MoreClassifierPrefixes.Prepend(ClassifierPrefix))
        {
            if (p is not { Length: > 0 }) continue;
            var prefix = p.EndsWith('.') ? p : p + ".";
            if (key.StartsWith(prefix, StringComparison.Ordinal)) return true;
        }
        return false;
    }
}

/// <summary>What to do with a classifier whose shape differs from the model's.</summary>
internal enum ClassifierRule
{
    /// <summary>It is an error, which suggests --num-classes or fine-tuning.</summary>
    MustFit,
    /// <summary>Fine-tuning for another class count: the model's fresh classifier is kept, and the caller's log says so.</summary>
    ReinitialiseIfDifferent,
}

/// <summary>How StateDictLoader loads.</summary>
internal sealed record StateDictLoadOptions
{
    public StateDictKeys Keys { get; init; } = StateDictKeys.Plain;
    public ClassifierRule Classifier { get; init; } = ClassifierRule.MustFit;
    /// <summary>Missing and unexpected keys are tolerated and reported instead of refused (shapes must still fit).</summary>
    public bool Partial { get; init; }
    /// <summary>
    /// Where the notes go, at Information (the caller's logger, category DeepLabTorch.Checkpoints): each
    /// re-initialised classifier key with both shapes, and what a lenient load tolerated. The report lists them too.
    /// </summary>
    public ILogger? Logger { get; init; }
}

/// <summary>
/// What a load did: model keys copied, classifier keys kept at their initialisation, keys the file
/// lacked or the model lacked (only a partial load gets past those), and notes.
/// </summary>
internal sealed record StateDictLoadReport(
    IReadOnlyList<string> Loaded, IReadOnlyList<string> Reinitialised,
    IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected, IReadOnlyList<string> Notes);

/// <summary>
/// The one way weights get into a module: ModelLoader (predict, eval, export, matte, train
/// --init-weights), train --resume and --ft, CheckpointStore and LoadReferenceStateDict all come here.
/// Alias keys are mapped to the model's; a missing num_batches_tracked is tolerated (PyTorch before
/// 0.4.1 did not write it); every other missing key, buffers included, every unexpected key, and every
/// shape or dtype-kind mismatch is an error, found before anything is copied. TorchSharp's own
/// load_state_dict broadcasts mismatched shapes silently and is never used.
/// </summary>
internal static class StateDictLoader
{
    private const string Counter = ".num_batches_tracked";

    /// <summary>Reads a weight file (WeightFiles.LoadStateDict) and loads it; info is what the file said about itself.</summary>
    public static StateDictLoadReport LoadFile(nn.Module model, string path, StateDictLoadOptions? options, out CheckpointInfo? info)
    {
        var sd = WeightFiles.LoadStateDict(path, out info);
        try
        {
            return Load(model, sd, path, options);
        }
        finally
        {
            foreach (var t in sd.Values) t.Dispose();
        }
    }

    /// <summary>
    /// Copies source into the module's own tensors. source names where the tensors came from (the
    /// file's path) in the one error, a CheckpointException. The caller keeps ownership of source.
    /// </summary>
    public static StateDictLoadReport Load(nn.Module model, IReadOnlyDictionary<string, Tensor> source, string sourceName, StateDictLoadOptions? options = null)
    {
        options ??= new StateDictLoadOptions();
        var keys = options.Keys;
        var own = model.StateDictInOrder();
        var mismatched = new List<string>();
        var mapped = MapAliases(source, keys.Aliases, mismatched);

        var missing = own.Keys.Where(k => !mapped.ContainsKey(k)).ToList();
        var unexpected = mapped.Where(kv => !own.ContainsKey(kv.Key)).Select(kv => kv.Value.FileKey).ToList();
        // A BatchNorm step counter missing from the file is harmless: set to 0 where that BatchNorm's
        // statistics are loaded, left alone where they are not (a partial load).
        var counters = missing.Where(k => k.EndsWith(Counter, StringComparison.Ordinal)).ToList();
        missing.RemoveAll(k => k.EndsWith(Counter, StringComparison.Ordinal));
        var zeroed = counters.Where(k => mapped.ContainsKey(k[..^Counter.Length] + ".running_mean")).ToList();

        var reinit = new List<string>();
        var classifierMismatch = false;
        foreach (var (k, t) in own)
        {
            if (!mapped.TryGetValue(k, out var s)) continue;
            var named = s.FileKey == k ? k : $"{k} (file key {s.FileKey})";
            if (!s.Tensor.shape.SequenceEqual(t.shape))
            {
                if (options.Classifier == ClassifierRule.ReinitialiseIfDifferent && keys.IsClassifier(k)) reinit.Add(k);
                else
                {
                    mismatched.Add($"{named}: file [{Shape(s.Tensor)}] vs model [{Shape(t)}]");
                    classifierMismatch |= keys.IsClassifier(k);
                }
            }
            else if (s.Tensor.dtype.IsFloatingPoint() != t.dtype.IsFloatingPoint())
                mismatched.Add($"{named}: file {s.Tensor.dtype} vs model {t.dtype}");
        }

        var problems = Problems(mismatched, classifierMismatch, missing, unexpected, options);
        if (problems.Count > 0)
            throw new CheckpointException(sourceName, $"the weights do not fit {keys.Description ?? "the model"}: " + string.Join(". ", problems));

        var loaded = new List<string>();
        using (no_grad())
        {
            foreach (var (k, t) in own)
            {
                if (reinit.Contains(k) || !mapped.TryGetValue(k, out var s)) continue;
                t.copy_(s.Tensor);
                loaded.Add(k);
            }
            foreach (var k in zeroed) own[k].zero_();
        }
        return Report(loaded, reinit, missing, unexpected, zeroed, own, mapped, options.Logger);
    }

    /// <summary>File keys → model keys. When an alias and its canonical key are both present (one tensor in the reference), the canonical one is used and their shapes must agree.</summary>
    private static Dictionary<string, (string FileKey, Tensor Tensor)> MapAliases(
        IReadOnlyDictionary<string, Tensor> source, IReadOnlyDictionary<string, string> aliases, List<string> mismatched)
    {
        var mapped = new Dictionary<string, (string, Tensor)>(StringComparer.Ordinal);
        foreach (var (k, t) in source)
            if (!aliases.ContainsKey(k)) mapped[k] = (k, t);
        foreach (var (k, t) in source)
        {
            if (!aliases.TryGetValue(k, out var canonical)) continue;
            if (!mapped.TryGetValue(canonical, out var c)) mapped[canonical] = (k, t);
            else if (!c.Item2.shape.SequenceEqual(t.shape))
                mismatched.Add($"alias {k} [{Shape(t)}] vs {c.Item1} [{Shape(c.Item2)}] (one tensor under two names)");
        }
        return mapped;
    }

    private static List<string> Problems(List<string> mismatched, bool classifierMismatch, List<string> missing, List<string> unexpected,
        StateDictLoadOptions options)
    {
        var problems = new List<string>();
        if (mismatched.Count > 0)
        {
            problems.Add("shape mismatch for " + Summarize(mismatched, "; ") + (classifierMismatch
                ? " (the classifier is for another number of classes: pass --num-classes to match the file, or fine-tune with train --init-weights or --ft, which re-initialise it)"
                : ""));
        }
        if (!options.Partial && missing.Count > 0) problems.Add("missing from the file: " + Summarize(missing, ", "));
        if (!options.Partial && unexpected.Count > 0) problems.Add("not in the model: " + Summarize(unexpected, ", "));
        return problems;
    }

    private static StateDictLoadReport Report(List<string> loaded, List<string> reinit, List<string> missing, List<string> unexpected, List<string> zeroed,
        Dictionary<string, Tensor> own, Dictionary<string, (string FileKey, Tensor Tensor)> mapped, ILogger? log)
    {
        // Each note twice: as text for the report, and as a template with its values for the log.
        var notes = new List<string>();
        foreach (var k in reinit)
        {
            string file = Shape(mapped[k].Tensor), model = Shape(own[k]);
            notes.Add($"re-initialised {k}: file [{file}] vs model [{model}]");
            log?.LogInformation("re-initialised {Key}: file [{FileShape}] vs model [{ModelShape}]", k, file, model);
        }
        if (zeroed.Count > 0)
        {
            notes.Add($"{zeroed.Count} BatchNorm num_batches_tracked not in the file (PyTorch before 0.4.1): set to 0");
            log?.LogInformation("{Count} BatchNorm num_batches_tracked not in the file (PyTorch before 0.4.1): set to 0", zeroed.Count);
        }
        if (missing.Count > 0)
        {
            var keys = Summarize(missing, ", ");
            notes.Add($"partial load: {missing.Count} model keys not in the file kept as they were: {keys}");
            log?.LogInformation("partial load: {Count} model keys not in the file kept as they were: {Keys}", missing.Count, keys);
        }
        if (unexpected.Count > 0)
        {
            var keys = Summarize(unexpected, ", ");
            notes.Add($"partial load: {unexpected.Count} file keys not in the model ignored: {keys}");
            log?.LogInformation("partial load: {Count} file keys not in the model ignored: {Keys}", unexpected.Count, keys);
        }
        return new StateDictLoadReport(loaded, reinit, missing, unexpected, notes);
    }

    /// <summary>The first keys of a long list, and how many more: a whole model's keys make an unreadable message.</summary>
    public static string Summarize(IReadOnlyList<string> items, string separator = ", ") =>
        items.Count <= 12 ? string.Join(separator, items) : string.Join(separator, items.Take(12)) + $"{separator}… ({items.Count - 12} more)";

    private static string Shape(Tensor t) => string.Join(", ", t.shape);
}
