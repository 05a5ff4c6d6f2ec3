namespace DeepLabTorch.Cli.Progress;

/// <summary>
/// The console that progress and messages share: one lock for everything written to it, and the progress
/// line now open on it (drawn with "\r" and not yet ended). A message ends that line first, so it never
/// lands in the middle of a bar; the bar is drawn again below it at the next report.
/// </summary>
public sealed class TerminalLine
{
    /// <summary>This process's stdout and stderr (one terminal when both are one).</summary>
    public static TerminalLine Console { get; } = new();

    internal object Gate { get; } = new();

    /// <summary>The renderer whose line is open, if any.</summary>
    internal ConsoleProgress? Open { get; set; }

    /// <summary>Ends the open progress line, if there is one, so that what follows starts on a line of its own.</summary>
    public void End()
    {
        lock (Gate)
        {
            Open?.EndLine();
        }
    }
}
