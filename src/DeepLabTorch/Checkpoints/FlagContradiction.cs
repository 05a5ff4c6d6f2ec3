namespace DeepLabTorch.Checkpoints;

/// <summary>
/// "A flag names another model than the file holds", said one way everywhere (train --resume,
/// --init-weights, eval, export, predict, matte): the flag, its value, the file and what the file
/// holds, and what to do instead. One line, so a user sees both values at once.
/// </summary>
internal static class FlagContradiction
{
    /// <summary>"--out-stride 8 contradicts last.safetensors, which was trained at output stride 16 (leave --out-stride out)".</summary>
    public static UserException Error(string flag, object given, string file, string whatTheFileHolds, string? remedy = null) =>
        new($"--{flag} {given} contradicts {file}, which {whatTheFileHolds} ({remedy ?? $"leave --{flag} out to use the file's"})");

    /// <summary>Throws when a backbone was asked for (case-insensitive) and the file holds another.</summary>
    public static void Backbone(string? given, string held, string file, string? remedy = null)
    {
        if (given is not null && !string.Equals(given, held, StringComparison.OrdinalIgnoreCase))
            throw Error("backbone", given, file, $"holds a {held} model", remedy);
    }

    /// <summary>Throws when an output stride was asked for and the file's model was trained at another.</summary>
    public static void OutputStride(int? given, int held, string file, string? remedy = null)
    {
        if (given is { } os && os != held)
            throw Error("out-stride", os, file, $"was trained at output stride {held}", remedy);
    }

    /// <summary>Throws when a class count was asked for and the file's model predicts another.</summary>
    public static void NumClasses(int? given, int held, string file, string remedy)
    {
        if (given is { } n && n != held)
            throw Error("num-classes", n, file, $"predicts {held} classes", remedy);
    }
}
