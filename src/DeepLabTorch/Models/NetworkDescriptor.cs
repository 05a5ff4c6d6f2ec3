using System.Text.RegularExpressions;

namespace DeepLabTorch.Models;

/// <summary>
/// A whole network of the catalogue, beside DeepLabV3+'s backbones: the real-time face-parsing
/// networks, which bring their own heads. Declared with its module (Models/FaceParsing): its name in
/// configs, checkpoints and --backbone, how to build it for a class count, and the key pattern that
/// recognises its weights.
/// </summary>
/// <param name="Name">The name in configs, checkpoints and --backbone (lower case).</param>
/// <param name="Title">The name a person reads ("BiSeNet (ResNet-18)").</param>
/// <param name="Create">Builds the network for a number of classes.</param>
/// <param name="WeightKeyPattern">A state_dict holding a key that matches this is recognised as this network's...</param>
/// <param name="ExcludedKeyPattern">...unless it also holds a key that matches this (a deeper sibling).</param>
internal sealed record NetworkDescriptor(
    string Name,
    string Title,
    Func<int, SegmentationModel> Create,
    string WeightKeyPattern,
    string? ExcludedKeyPattern = null)
{
    private readonly Regex _weightKeys = new(WeightKeyPattern, RegexOptions.CultureInvariant);
    private readonly Regex? _excludedKeys = ExcludedKeyPattern is null ? null : new(ExcludedKeyPattern, RegexOptions.CultureInvariant);

    /// <summary>True when these state_dict keys are this network's.</summary>
    public bool Recognises(IReadOnlyCollection<string> keys) =>
        keys.Any(_weightKeys.IsMatch) && (_excludedKeys is null || !keys.Any(_excludedKeys.IsMatch));
}
