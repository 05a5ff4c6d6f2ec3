using DeepLabTorch.Models.Backbones;
using DeepLabTorch.Extensions;

namespace DeepLabTorch.Models;

/// <summary>
/// What the framework knows about one backbone: its name, how to build it for an output stride, its
/// feature channels, how to recognise its weights, and the reference's alias keys. Adding a backbone is
/// its module file plus one entry here.
/// </summary>
public sealed record BackboneEntry(
    string Name,
    Func<int, Backbone> Create,
    int LowLevelChannels,
    int HighLevelChannels,
    IReadOnlyList<string> WeightKeyPrefixes,
    Func<IEnumerable<string>, IEnumerable<(string Alias, string Canonical)>>? ReferenceAliases)
{
    private IReadOnlyDictionary<string, string>? _aliasMap;

    /// <summary>The reference's alias keys mapped to our canonical keys (empty for backbones without aliases).</summary>
    public IReadOnlyDictionary<string, string> AliasMap => _aliasMap ??= BuildAliasMap();

    /// <summary>(alias, canonical) pairs for a model's canonical keys, in the reference's order.</summary>
    public IEnumerable<(string Alias, string Canonical)> AliasesFor(IEnumerable<string> canonicalKeys) =>
        ReferenceAliases?.Invoke(canonicalKeys) ?? [];

    private Dictionary<string, string> BuildAliasMap()
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        if (ReferenceAliases is null) return map;
        // Built from a real backbone's keys, so the map can never drift from the module tree.
        using var net = Create(16);
        foreach (var (alias, canonical) in ReferenceAliases(net.StateDictInOrder().Keys.Select(k => "backbone." + k)))
            map[alias] = canonical;
        return map;
    }

    /// <summary>True when a state_dict's keys are this backbone's (the reference's names, aliases included).</summary>
    public bool Recognises(IEnumerable<string> keys) =>
        keys.Any(k => WeightKeyPrefixes.Any(prefix => k.StartsWith(prefix, StringComparison.Ordinal)));
}

/// <summary>The backbones, by name.</summary>
public static class ModelCatalog
{
    public static IReadOnlyList<BackboneEntry> Entries { get; } = new BackboneEntry[]
    {
        new("mobilenet", os => new MobileNetV2(os), 24, 320, ["backbone.features.", MobileNetLowAlias], MobileNetAliases),
        new("xception", os => new AlignedXception(os), 128, 2048, ["backbone.block"], null),
        new("resnet", os => new ResNet(os), 256, 2048, ["backbone.layer1."], null),
    };

    public static IReadOnlyList<string> Names { get; } = Entries.Select(e => e.Name).ToArray();

    private const string MobileNetLowAlias = "backbone.low_level_features.";

    /// <summary>The entry for a backbone name; a UserException lists the known names otherwise.</summary>
    public static BackboneEntry Get(string name) =>
        Entries.FirstOrDefault(e => e.Name == name)
        ?? throw new UserException($"unknown backbone '{name}': expected one of {string.Join(", ", Names)}");

    /// <summary>The backbone whose weights these keys are; null when none fits.</summary>
    public static BackboneEntry? Recognise(IEnumerable<string> keys)
    {
        var list = keys as IReadOnlyCollection<string> ?? keys.ToList();
        return Entries.FirstOrDefault(e => e.Recognises(list));
    }

    /// <summary>
    /// The reference MobileNetV2 also exposes features[0:4] as "backbone.low_level_features.*" and
    /// features[4:] as "backbone.high_level_features.*": the same tensors under second names, with the
    /// same indices. Given the canonical keys, yields (alias, canonical) pairs in the reference's order.
    /// </summary>
    private static IEnumerable<(string, string)> MobileNetAliases(IEnumerable<string> canonicalKeys)
    {
        const string features = "backbone.features.";
        var keys = canonicalKeys.Where(k => k.StartsWith(features, StringComparison.Ordinal)).ToList();
        foreach (var low in new[] { true, false })
            foreach (var k in keys)
            {
                var rest = k[features.Length..];
                int index = int.Parse(rest[..rest.IndexOf('.')], System.Globalization.CultureInfo.InvariantCulture);
                if ((index < Architecture.MobileNetLowLevelModules) == low)
                    yield return ((low ? MobileNetLowAlias : "backbone.high_level_features.") + rest, k);
            }
    }
}
