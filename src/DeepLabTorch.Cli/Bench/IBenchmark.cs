using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;

namespace DeepLabTorch.Cli.Bench;

/// <summary>A benchmark run by `deeplab bench NAME`; discovered by reflection, one class per file.</summary>
public interface IBenchmark
{
    string Name { get; }
    string Description { get; }
    /// <summary>
    /// Runs and returns the figures as JSON (the verb prints it on stdout). args are the verb's extra key=value
    /// settings; log takes what the benchmark reports on the way (a point done, the CPU-kernel verdict), on stderr.
    /// </summary>
    JsonObject Run(IReadOnlyDictionary<string, string> args, ILogger log);
}
