using System.Diagnostics;
using System.Globalization;
using System.Text;
using DeepLabTorch.Runtime;

namespace DeepLabTorch.Cli.Progress;

/// <summary>How the CLI shows progress.</summary>
public enum ProgressMode
{
    /// <summary>Nothing (--quiet, or redirected output where the verb logs its own summary lines).</summary>
    Off,
    /// <summary>One line redrawn in place with "\r", at most five times a second, cut to the terminal's width.</summary>
    Terminal,
    /// <summary>Plain lines: one per tenth of a known total (or every 30 s), and one at the end; never a redraw.</summary>
    Lines,
}

/// <summary>
/// The CLI's one progress renderer: every verb's progress (train, eval, predict, matte, video) comes to it as
/// ProgressReports from the library, which draws nothing itself. A report with a new label starts a new line.
/// It shares a TerminalLine with ConsoleSink: a log message first ends an open progress line, so it never
/// lands in the middle of a bar.
/// </summary>
public sealed class ConsoleProgress : IProgress<ProgressReport>
{
    /// <summary>Redraws on a terminal are at least this far apart (about five a second), except a task's first and last.</summary>
    public static readonly TimeSpan RedrawInterval = TimeSpan.FromMilliseconds(200);

    /// <summary>Redirected output gets a line at least this often, even between tenths.</summary>
    public static readonly TimeSpan LineInterval = TimeSpan.FromSeconds(30);

    private const int BarWidth = 20;

    private readonly TextWriter _out;
    private readonly int? _columns;
    private readonly Func<TimeSpan> _clock;
    private readonly TerminalLine _line;

    // The task now reported on, and what has been shown of it.
    private string? _label;
    private long _done = -1;
    private bool _ended;
    private TimeSpan _started;
    private TimeSpan? _lastShown;
    private long _lastPrintedDone;
    private int _lastWidth;
    private bool _lineOpen;

    /// <param name="output">Where the progress goes.</param>
    /// <param name="mode">Terminal, plain lines or nothing (see ModeFor).</param>
    /// <param name="columns">The terminal's width (default: asked of the console in Terminal mode); redrawn lines are cut to one less.</param>
    /// <param name="clock">The time now (default: a stopwatch), for the redraw and line intervals; tests step it by hand.</param>
    /// <param name="line">The console shared with the log messages (default: this process's, TerminalLine.Console).</param>
    public ConsoleProgress(TextWriter output, ProgressMode mode, int? columns = null, Func<TimeSpan>? clock = null, TerminalLine? line = null)
    {
        _out = output;
        _line = line ?? TerminalLine.Console;
        Mode = mode;
        _columns = columns ?? (mode == ProgressMode.Terminal ? TerminalColumns() : null);
        if (clock is null)
        {
            var watch = Stopwatch.StartNew();
            clock = () => watch.Elapsed;
        }
        _clock = clock;
    }

    public ProgressMode Mode { get; }

    /// <summary>This renderer, or null when it shows nothing, so the library skips making reports.</summary>
    public IProgress<ProgressReport>? OrNull => Mode == ProgressMode.Off ? null : this;

    /// <summary>
    /// Progress on stderr, where every verb draws it (stdout carries results only): redrawn on a terminal, plain
    /// lines when redirected, nothing with --quiet. With linesWhenRedirected false (train), redirected output gets
    /// none: train logs a line per epoch and per evaluation, which is the record a file needs.
    /// </summary>
    public static ConsoleProgress ForStderr(bool quiet, bool linesWhenRedirected = true) =>
        new(Console.Error, ModeFor(quiet, Console.IsErrorRedirected, linesWhenRedirected));

    /// <summary>
    /// Off with --quiet; Terminal when the output is a terminal, TERM is not "dumb" and CI is not set;
    /// otherwise Lines, or Off when the verb wants no lines in redirected output.
    /// </summary>
    /// <param name="environment">Reads TERM and CI (default: this process's environment).</param>
    public static ProgressMode ModeFor(bool quiet, bool redirected, bool linesWhenRedirected, Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        if (quiet) return ProgressMode.Off;
        if (!redirected && environment("TERM") != "dumb" && !IsCiValue(environment("CI"))) return ProgressMode.Terminal;
        return linesWhenRedirected ? ProgressMode.Lines : ProgressMode.Off;
    }

    /// <summary>CI set, as CI services set it (to anything but "false" or "0"): no redraws, whatever the output is.</summary>
    public static bool RunningInCi => IsCiValue(Environment.GetEnvironmentVariable("CI"));

    /// <summary>Whether a value of CI means a CI service: set, and not "0" or "false".</summary>
    internal static bool IsCiValue(string? value) => value is { Length: > 0 } && value != "0" && !value.Equals("false", StringComparison.OrdinalIgnoreCase);

    /// <summary>The terminal's width: Console.WindowWidth, else $COLUMNS, else 80.</summary>
    public static int TerminalColumns()
    {
        try
        {
            if (Console.WindowWidth is > 0 and var w) return w;
        }
        catch (IOException) { }
        catch (PlatformNotSupportedException) { }
        return int.TryParse(Environment.GetEnvironmentVariable("COLUMNS"), NumberStyles.None, CultureInfo.InvariantCulture, out var c) && c > 0 ? c : 80;
    }

    /// <summary>
    /// A line cut to one column less than the terminal: a line as wide as the terminal wraps, and then every
    /// "\r" redraw starts a new line instead of replacing the old one.
    /// </summary>
    public static string Fit(string line, int? columns) =>
        columns is int c && c > 1 && line.Length > c - 1 ? line[..(c - 1)] : line;

    public void Report(ProgressReport value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (Mode == ProgressMode.Off) return;
        lock (_line.Gate)
        {
            // A task's end reported twice (Done reached Total, then Final at the same count) is shown once.
            if (_ended && value.Label == _label && value.Done == _done) return;
            var now = _clock();
            if (value.Label != _label || value.Done < _done || _ended) Start(value.Label, now);
            if (Mode == ProgressMode.Terminal) Redraw(value, now);
            else Print(value, now);
            _done = value.Done;
            _ended = value.Ends;
        }
    }

    private void Start(string label, TimeSpan now)
    {
        EndLine();
        _label = label;
        _done = -1;
        _started = now;
        _lastShown = null;
        _lastPrintedDone = 0;
        _lastWidth = 0;
    }

    private void Redraw(ProgressReport r, TimeSpan now)
    {
        if (!r.Ends && _lastShown is TimeSpan last && now - last < RedrawInterval) return;
        var line = Fit(Format(r), _columns);
        var pad = Math.Max(0, _lastWidth - line.Length);
        _out.Write("\r" + line + new string(' ', pad));
        _lastWidth = line.Length;
        _lastShown = now;
        _lineOpen = true;
        if (!ReferenceEquals(_line.Open, this)) _line.Open?.EndLine(); // another renderer's line: ended, not overdrawn
        _line.Open = this;
        if (r.Ends) EndLine();
        else _out.Flush();
    }

    private void Print(ProgressReport r, TimeSpan now)
    {
        var due = r.KnownTotal is long t
            ? r.Done * 10 / t > _lastPrintedDone * 10 / t
            : _lastShown is null;
        due |= now - (_lastShown ?? _started) >= LineInterval;
        due |= r.Ends && (_lastShown is null || r.Done != _lastPrintedDone);
        if (!due) return;
        _out.WriteLine(Format(r));
        _out.Flush();
        _lastShown = now;
        _lastPrintedDone = r.Done;
    }

    /// <summary>Ends this renderer's open terminal line: the bar stays as it was, and what follows starts below it.</summary>
    internal void EndLine()
    {
        if (!_lineOpen) return;
        _out.WriteLine();
        _out.Flush();
        _lineOpen = false;
        _lastWidth = 0;
        if (ReferenceEquals(_line.Open, this)) _line.Open = null;
    }

    /// <summary>
    /// "epoch 2/50 [########............] 40/100 loss 0.4312 lr 0.0069 31.5 img/s ETA 1m05s": the label, a bar and
    /// the count (just the count when the total is unknown), the unit, the fields, the rate and, with a total, the ETA.
    /// </summary>
    public static string Format(ProgressReport r)
    {
        var s = new StringBuilder();
        if (r.Label.Length > 0) s.Append(r.Label).Append(' ');
        if (r.KnownTotal is long total)
        {
            var filled = (int)Math.Round(Math.Clamp((double)r.Done / total, 0, 1) * BarWidth);
            s.Append('[').Append('#', filled).Append('.', BarWidth - filled).Append("] ");
            s.Append(CultureInfo.InvariantCulture, $"{r.Done}/{total}");
        }
        else
        {
            s.Append(r.Done.ToString(CultureInfo.InvariantCulture));
        }
        if (r.Unit.Length > 0) s.Append(' ').Append(r.Unit);
        foreach (var f in r.Fields) s.Append(' ').Append(f.Name).Append(' ').Append(f.Value);
        var (perSecond, unit) = r.ShownRate;
        s.Append(' ').Append(perSecond.ToString(perSecond >= 100 ? "0" : "0.0", CultureInfo.InvariantCulture)).Append(' ').Append(unit).Append("/s");
        if (r.KnownTotal is not null) s.Append(" ETA ").Append(ProgressReport.Duration(r.EtaSeconds));
        return s.ToString();
    }
}
