using System.Globalization;

namespace DeepLabTorch.Runtime;

/// <summary>One named value shown on a progress line, already formatted (e.g. "loss" "0.4312").</summary>
public readonly record struct ProgressField(string Name, string Value);

/// <summary>
/// How far one task has got, as the library reports it through <see cref="IProgress{T}"/>. The library
/// never draws: the CLI's renderer (or a library user's own) decides what to show, where and how often.
/// </summary>
/// <param name="Label">The task, e.g. "epoch 3/50", "eval", "predict"; a new label starts a new line.</param>
/// <param name="Done">Items finished so far (batches, images, frames).</param>
/// <param name="Total">Items in all, or null when unknown (e.g. a video without a frame count).</param>
/// <param name="Unit">What Done counts ("images", "frames"); empty for iterations.</param>
/// <param name="Elapsed">Time since the task started: the rate and the ETA come from it.</param>
public sealed record ProgressReport(string Label, long Done, long? Total, string Unit, TimeSpan Elapsed)
{
    /// <summary>Further values in the order to show them, e.g. training's running loss and learning rate.</summary>
    public IReadOnlyList<ProgressField> Fields { get; init; } = Array.Empty<ProgressField>();

    /// <summary>
    /// The rate to show, when it is not Done per second in Unit: training counts batches but shows images
    /// per second, so it sets (images/s, "img").
    /// </summary>
    public (double PerSecond, string Unit)? Rate { get; init; }

    /// <summary>The task's last report: it stopped here (finished, cut short or failed), even below Total.</summary>
    public bool Final { get; init; }

    /// <summary>Total when it is known and positive, else null.</summary>
    public long? KnownTotal => Total is > 0 ? Total : null;

    /// <summary>True for the last report of a task: Final, or Done reached a known Total.</summary>
    public bool Ends => Final || KnownTotal is long t && Done >= t;

    /// <summary>The rate in items per second and the unit it is counted in ("images" for images/s).</summary>
    public (double PerSecond, string Unit) ShownRate =>
        Rate ?? (Done / Math.Max(1e-9, Elapsed.TotalSeconds), Unit.Length > 0 ? Unit : "it");

    /// <summary>Seconds left at the rate so far, or NaN when the total is unknown or nothing is done yet.</summary>
    public double EtaSeconds => KnownTotal is long t && Done > 0 ? Elapsed.TotalSeconds / Done * Math.Max(0, t - Done) : double.NaN;

    /// <summary>A value formatted for a field with the invariant culture: "0.0000" for a loss, "0.######" for a learning rate.</summary>
    internal static string Number(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);

    /// <summary>"45s", "1m05s", "2h03m"; "--" for NaN or infinity.</summary>
    internal static string Duration(double seconds)
    {
        if (double.IsNaN(seconds) || double.IsInfinity(seconds)) return "--";
        var t = TimeSpan.FromSeconds(Math.Max(0, Math.Round(seconds)));
        return t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:00}m" : t.TotalMinutes >= 1 ? $"{t.Minutes}m{t.Seconds:00}s" : $"{t.Seconds}s";
    }
}
