using System.Text.RegularExpressions;
using DeepLabTorch.Extensions;

namespace DeepLabTorch.Models.Backbones;

/// <summary>
/// Everything the framework knows about one backbone, declared next to its module: the name used by
/// configs and flags, how to build it for an output stride, its feature channels and strides, where the
/// low-level features are tapped, the reference's alias keys, and the key pattern that recognises its
/// weights. ModelCatalog lists these; nothing else names a backbone.
/// </summary>
/// <param name="Name">The name in configs, checkpoints and --backbone (lower case).</param>
/// <param name="Title">The name a person reads ("ResNet-101").</param>
/// <param name="Factory">Builds the module for (this descriptor, output stride).</param>
/// <param name="LowLevelChannels">Channels of the low-level features (stride 4) the decoder projects.</param>
/// <param name="HighLevelChannels">Channels of the output features ASPP reads.</param>
/// <param name="LowLevelTap">The backbone submodule whose output is the low-level feature map.</param>
/// <param name="WeightKeyPattern">A state_dict holding a key that matches this is recognised as this backbone's...</param>
/// <param name="ExcludedKeyPattern">...unless it also holds a key that matches this (a deeper sibling of the same family).</param>
/// <param name="ReferenceAliases">Given canonical keys ("backbone.…"), the reference's (alias, canonical) pairs in its order; null when it has none.</param>
internal sealed record BackboneDescriptor(
    string Name,
    string Title,
    Func<BackboneDescriptor, int, Backbone> Factory,
    int LowLevelChannels,
    int HighLevelChannels,
    string LowLevelTap,
    string WeightKeyPattern,
    string? ExcludedKeyPattern = null,
    Func<IEnumerable<string>, IEnumerable<(string Alias, string Canonical)>>? ReferenceAliases = null)
{
    private IReadOnlyDictionary<string, string>? _aliasMap;
    private readonly Regex _weightKeys = new(WeightKeyPattern, RegexOptions.CultureInvariant);
    private readonly Regex? _excludedKeys = ExcludedKeyPattern is null ? null : new(ExcludedKeyPattern, RegexOptions.CultureInvariant);

    /// <summary>The output strides the backbone can be built for.</summary>
    public IReadOnlyList<int> OutputStrides { get; init; } = Architecture.OutputStrides;

    /// <summary>The low-level features' stride.</summary>
    public int LowLevelStride { get; init; } = Architecture.LowLevelStride;

    /// <summary>A freshly initialised backbone for this output stride.</summary>
    public Backbone Create(int outputStride) => Factory(this, outputStride);

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
        using var net = Create(OutputStrides[^1]);
        foreach (var (alias, canonical) in ReferenceAliases(net.StateDictInOrder().Keys.Select(k => "backbone." + k)))
            map[alias] = canonical;
        return map;
    }

    /// <summary>True when a state_dict's keys are this backbone's (the reference's names, aliases included).</summary>
    public bool Recognises(IEnumerable<string> keys)
    {
        bool matched = false;
        foreach (var k in keys)
        {
            if (_excludedKeys is not null && _excludedKeys.IsMatch(k)) return false;
            matched |= _weightKeys.IsMatch(k);
        }
        return matched;
    }
}
