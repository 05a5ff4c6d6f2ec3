using System.Diagnostics;
using System.Globalization;

namespace DeepLabTorch.Inference;

/// <summary>
/// One self-overwriting progress line on a terminal (plain lines every few seconds when redirected):
/// a bar when the total is known, the count, and the rate in items per second.
/// </summary>
public sealed class ProgressLine
{
    private readonly TextWriter _out;
    private readonly string _unit;
    private readonly long? _total;
    private readonly bool _interactive;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private TimeSpan? _lastDraw;
    private int _lastWidth;

    private readonly int? _columns;

    /// <param name="columns">The terminal's width (default: Console.WindowWidth when interactive); redrawn lines are cut to fit it.</param>
    public ProgressLine(TextWriter output, string unit, long? total, bool? interactive = null, int? columns = null)
    {
        _out = output;
        _unit = unit;
        _total = total is > 0 ? total : null;
        _interactive = interactive ?? (ReferenceEquals(output, Console.Error) && !Console.IsErrorRedirected && !Reporting.ProgressBar.RunningInCi);
        _columns = columns ?? (_interactive ? Reporting.ProgressBar.TerminalColumns() : null);
    }

    public long Done { get; private set; }
    public TimeSpan Elapsed => _clock.Elapsed;
    public double Rate => Done / Math.Max(1e-9, _clock.Elapsed.TotalSeconds);

    /// <summary>
    /// Counts one more item. A terminal is redrawn at most about five times a second; anything else gets
    /// a line for each tenth of a known total (or every 30 s when the total is unknown), never a redraw.
    /// </summary>
    public void Step(string? note = null)
    {
        Done++;
        var now = _clock.Elapsed;
        if (!_interactive && _total is long total)
        {
            if (Done * 10 / total == (Done - 1) * 10 / total && Done != total) return;
        }
        else
        {
            var every = _interactive ? TimeSpan.FromMilliseconds(200) : TimeSpan.FromSeconds(30);
            if (_lastDraw is TimeSpan last && now - last < every && Done != _total) return;
        }
        _lastDraw = now;
        Draw(note);
    }

    /// <summary>The text of the line as it stands.</summary>
    public string Text(string? note = null)
    {
        var rate = Rate.ToString(Rate >= 10 ? "F0" : "F1", CultureInfo.InvariantCulture);
        string count = _total is long t ? $"{Done}/{t}" : Done.ToString(CultureInfo.InvariantCulture);
        string bar = "";
        if (_total is long total)
        {
            const int width = 24;
            int filled = (int)Math.Min(width, Done * width / total);
            bar = "[" + new string('#', filled) + new string('.', width - filled) + "] ";
        }
        var line = $"{bar}{count} {_unit}  {rate} {_unit}/s";
        return note is null ? line : line + "  " + note;
    }

    private void Draw(string? note)
    {
        var line = Text(note);
        if (_interactive)
        {
            line = Reporting.ProgressBar.Fit(line, _columns);
            _out.Write("\r" + line.PadRight(_lastWidth));
            _lastWidth = line.Length;
        }
        else
        {
            _out.WriteLine(line);
        }
        _out.Flush();
    }

    /// <summary>Ends the line (terminal) so the summary starts on a fresh one.</summary>
    public void Finish()
    {
        if (_interactive && _lastWidth > 0) _out.WriteLine();
        _out.Flush();
    }
}
