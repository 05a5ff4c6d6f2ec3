using System.Text.Json.Nodes;

namespace DeepLabTorch.Cli.Bench;

/// <summary>A benchmark run by `deeplab bench NAME`; discovered by reflection, one class per file.</summary>
public interface IBenchmark
{
    string Name { get; }
    string Description { get; }
    /// <summary>Runs and returns the figures as JSON. args are the verb's extra key=value settings.</summary>
    JsonObject Run(IReadOnlyDictionary<string, string> args);
}
