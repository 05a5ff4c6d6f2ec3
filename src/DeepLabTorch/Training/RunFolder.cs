using DeepLabTorch.Checkpoints;
using DeepLabTorch.Config;

namespace DeepLabTorch.Training;

/// <summary>
/// One folder per run. A new run refuses a folder that already holds a run's outputs (metrics would be
/// truncated, TensorBoard would hold two runs, a stale best checkpoint would pass for this run's),
/// unless it continues that run (--resume of a checkpoint in it) or --overwrite clears it first.
/// --overwrite removes only the files a run writes; anything else the user keeps there stays.
/// </summary>
internal static class RunFolder
{
    /// <summary>The files and folders a run writes, by name ("epoch-*.safetensors" stands for the periodic checkpoints).</summary>
    public static readonly string[] OutputNames =
    {
        "config.json", "metrics.jsonl", "train.log", "report.html", "last.safetensors", "best.safetensors", "epoch-*.safetensors", "tb",
    };

    /// <summary>The run outputs present in a folder (empty when it does not exist).</summary>
    public static IReadOnlyList<string> Outputs(string dir)
    {
        if (!Directory.Exists(dir)) return Array.Empty<string>();
        var found = new List<string>();
        foreach (var name in OutputNames)
        {
            if (name.Contains('*')) found.AddRange(Directory.EnumerateFiles(dir, name).Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal));
            else if (File.Exists(Path.Combine(dir, name)) || Directory.Exists(Path.Combine(dir, name))) found.Add(name);
        }
        return found;
    }

    /// <summary>Whether this config continues the run in its output folder: --resume names a checkpoint inside it.</summary>
    public static bool Continues(TrainConfig c) =>
        c.Resume is { } r && !c.Ft && string.Equals(Path.GetDirectoryName(Path.GetFullPath(r)), Path.GetFullPath(c.Output!).TrimEnd(Path.DirectorySeparatorChar), StringComparison.Ordinal);

    /// <summary>Throws before anything is loaded when the output folder holds another run and neither --resume nor --overwrite says what to do.</summary>
    public static void Check(TrainConfig c)
    {
        if (c.Overwrite || Continues(c)) return;
        var found = Outputs(c.Output!);
        if (found.Count == 0) return;
        var last = CheckpointFiles.Last(c.Output!);
        throw new UserException($"--output {c.Output} already holds a run ({string.Join(", ", found.Take(4))}{(found.Count > 4 ? ", ..." : "")}); " +
            (File.Exists(last) ? $"continue it with --resume {last}, " : "") +
            "start afresh there with --overwrite (which deletes those files), or give another --output");
    }

    /// <summary>--overwrite: removes the run outputs, and only them. Returns what was removed.</summary>
    public static IReadOnlyList<string> Clear(string dir)
    {
        var found = Outputs(dir);
        foreach (var name in found)
        {
            var path = Path.Combine(dir, name);
            if (Directory.Exists(path)) Directory.Delete(path, true);
            else File.Delete(path);
        }
        return found;
    }
}
