using DeepLabTorch.Runtime;
using System.Text.Json;
using System.Text.Json.Nodes;
using CommandLine;
using DeepLabTorch.Cli.Bench;
using DeepLabTorch.Extensions;
using TorchSharp;

namespace DeepLabTorch.Cli.Verbs;

[Verb("bench", HelpText = "Run a benchmark of the C# side and print JSON (scripts/bench.sh adds the Python baseline and ratios).")]
public sealed class BenchVerb : VerbBase
{
    [Value(0, MetaName = "name", Required = true, HelpText = "Benchmark name: overhead, model, infer, ... ('list' lists them).")]
    public string Name { get; set; } = "";

    [Value(1, MetaName = "settings", HelpText = "Extra key=value settings for the benchmark.")]
    public IEnumerable<string> Settings { get; set; } = Array.Empty<string>();

    [Option("threads", HelpText = "Intra-op threads (default: all cores).")]
    public int? Threads { get; set; }

    public static IReadOnlyList<IBenchmark> All() => typeof(BenchVerb).Assembly.GetTypes()
        .Where(t => typeof(IBenchmark).IsAssignableFrom(t) && !t.IsAbstract && !t.IsInterface)
        .Select(t => (IBenchmark)Activator.CreateInstance(t)!)
        .OrderBy(b => b.Name, StringComparer.Ordinal)
        .ToList();

    public override int Run()
    {
        var all = All();
        if (Name == "list")
        {
            foreach (var b in all) Results.WriteLine($"{b.Name,-10} {b.Description}");
            return 0;
        }
        var bench = all.FirstOrDefault(b => b.Name == Name)
            ?? throw new UserException($"unknown benchmark '{Name}'; known: {string.Join(", ", all.Select(b => b.Name))}");
        var settings = new Dictionary<string, string>();
        foreach (var s in Settings)
        {
            var i = s.IndexOf('=');
            if (i <= 0) throw new UserException($"benchmark setting '{s}' is not key=value");
            settings[s[..i]] = s[(i + 1)..];
        }
        if (Threads is int n) torch.set_num_threads(n);
        var log = Loggers.CreateLogger(LogCategories.Runtime);
        KernelGuard.Ensure(torch.get_num_threads(), log);
        var result = bench.Run(settings, log);
        Results.WriteLine(result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }
}
