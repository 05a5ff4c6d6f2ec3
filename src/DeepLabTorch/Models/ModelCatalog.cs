using DeepLabTorch.Models.Backbones;

namespace DeepLabTorch.Models;

/// <summary>
/// The backbones, by name: just the list of their descriptors (each declared with its module in
/// Models/Backbones). Adding a backbone is its module and one line here; configs, flags, help, weight
/// recognition, alias keys, export and the generic tests all read this list.
/// </summary>
public static class ModelCatalog
{
    public static IReadOnlyList<BackboneDescriptor> Entries { get; } = new[]
    {
        MobileNetV2.Entry,
        AlignedXception.Entry,
        ResNet.ResNet101,
        ResNet.ResNet50,
    };

    public static IReadOnlyList<string> Names { get; } = Entries.Select(e => e.Name).ToArray();

    /// <summary>"mobilenet (MobileNetV2) | xception (Xception-65) | …", for help texts.</summary>
    public static string Describe() => string.Join(" | ", Entries.Select(e => $"{e.Name} ({e.Title})"));

    /// <summary>The entry for a backbone name; a UserException lists the known names otherwise.</summary>
    public static BackboneDescriptor Get(string name) =>
        Entries.FirstOrDefault(e => e.Name == name)
        ?? throw new UserException($"unknown backbone '{name}': expected one of {string.Join(", ", Names)}");

    /// <summary>The backbone whose weights these keys are; null when none fits.</summary>
    public static BackboneDescriptor? Recognise(IEnumerable<string> keys)
    {
        var list = keys as IReadOnlyCollection<string> ?? keys.ToList();
        return Entries.FirstOrDefault(e => e.Recognises(list));
    }
}
