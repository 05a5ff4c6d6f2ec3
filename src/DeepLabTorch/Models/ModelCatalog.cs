using DeepLabTorch.Models.Backbones;
using DeepLabTorch.Models.FaceParsing;

namespace DeepLabTorch.Models;

/// <summary>
/// The models, by name: DeepLabV3+'s backbones (each declared with its module in Models/Backbones) and
/// the whole face-parsing networks (Models/FaceParsing); just the lists of their descriptors. Adding a backbone is its module and one line here; configs, flags, help, weight
/// recognition, alias keys, export and the generic tests all read this list.
/// </summary>
public static class ModelCatalog
{
    internal static IReadOnlyList<BackboneDescriptor> Entries { get; } = new[]
    {
        MobileNetV2.Entry,
        AlignedXception.Entry,
        ResNet.ResNet101,
        ResNet.ResNet50,
    };

    /// <summary>DeepLabV3+'s backbones by name.</summary>
    public static IReadOnlyList<string> Names { get; } = Entries.Select(e => e.Name).ToArray();

    /// <summary>The whole networks beside DeepLabV3+: the real-time face-parsing networks.</summary>
    internal static IReadOnlyList<NetworkDescriptor> Networks { get; } = new[]
    {
        new NetworkDescriptor("bisenet", "BiSeNet, ResNet-18", n => new BiSeNet(n), @"^cp\.resnet\.conv1\.weight$"),
        new NetworkDescriptor("stdc1", "STDC1-Seg", n => new StdcSeg(StdcVariant.Stdc1, n), @"^cp\.backbone\.x2\.", @"^cp\.backbone\.features\.(1[0-9]|[89])\."),
        new NetworkDescriptor("stdc2", "STDC2-Seg", n => new StdcSeg(StdcVariant.Stdc2, n), @"^cp\.backbone\.features\.13\."),
    };

    /// <summary>Every name --backbone takes: DeepLabV3+ over each backbone, then each whole network.</summary>
    public static IReadOnlyList<string> AllNames { get; } = Names.Concat(Networks.Select(n => n.Name)).ToArray();

    /// <summary>True for a whole network (bisenet, stdc1, stdc2), false for a DeepLabV3+ backbone.</summary>
    public static bool IsNetwork(string name) => Networks.Any(n => n.Name == name);

    /// <summary>"mobilenet (MobileNetV2) | xception (Xception-65) | … | bisenet (BiSeNet, ResNet-18) | …", for help texts.</summary>
    public static string Describe() => string.Join(" | ", Entries.Select(e => $"{e.Name} ({e.Title})").Concat(Networks.Select(n => $"{n.Name} ({n.Title})")));

    /// <summary>The network for a whole-network name; null for a backbone name.</summary>
    internal static NetworkDescriptor? Network(string name) => Networks.FirstOrDefault(n => n.Name == name);

    /// <summary>The entry for a backbone name; a UserException lists the known names otherwise.</summary>
    internal static BackboneDescriptor Get(string name) =>
        Entries.FirstOrDefault(e => e.Name == name)
        ?? throw new UserException(IsNetwork(name)
            ? $"{name} is a whole network, not a DeepLabV3+ backbone"
            : $"unknown backbone '{name}': expected one of {string.Join(", ", AllNames)}");

    /// <summary>The backbone whose weights these keys are; null when none fits.</summary>
    internal static BackboneDescriptor? Recognise(IEnumerable<string> keys)
    {
        var list = keys as IReadOnlyCollection<string> ?? keys.ToList();
        return Entries.FirstOrDefault(e => e.Recognises(list));
    }

    /// <summary>The catalogue name (backbone or whole network) whose weights these keys are; null when none fits.</summary>
    public static string? RecogniseName(IEnumerable<string> keys)
    {
        var list = keys as IReadOnlyCollection<string> ?? keys.ToList();
        return Networks.FirstOrDefault(n => n.Recognises(list))?.Name ?? Recognise(list)?.Name;
    }
}
