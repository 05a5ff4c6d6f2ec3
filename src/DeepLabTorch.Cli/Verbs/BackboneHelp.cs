using DeepLabTorch.Config;
using DeepLabTorch.Models;

namespace DeepLabTorch.Cli.Verbs;

/// <summary>
/// --backbone help texts, built from ModelCatalog (CommandLineParser reads them through ResourceType),
/// so a backbone added to the catalogue appears in every verb's help.
/// </summary>
public static class BackboneHelp
{
    public static string Train => $"{ModelCatalog.Describe()} (default: {new TrainConfig().Backbone}, as the reference).";
    public static string ForFilesWithoutConfig => $"{ModelCatalog.Describe()}, for weight files that do not say (default: recognised from the keys).";
}
