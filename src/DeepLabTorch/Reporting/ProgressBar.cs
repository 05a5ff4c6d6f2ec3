using System.Diagnostics;
using System.Globalization;

namespace DeepLabTorch.Reporting;

/// <summary>
/// Per-epoch progress: iteration, running mean loss, lr, images/s and ETA. On a terminal it redraws
/// one line in place; otherwise (CI, files) it prints a plain line every tenth of the epoch or every
/// 30 seconds, whichever comes first, and at the end.
/// </summary>
public sealed class ProgressBar
{
    private readonly TextWriter _out;
    private readonly bool _tty;
    private readonly string _label;
    private readonly int _total;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private TimeSpan _lastPrint = TimeSpan.Zero;
    private int _lastPrinted = -1;
    private int _lastWidth;
    private readonly int? _columns;

    /// <param name="columns">The terminal's width (default: Console.WindowWidth on a terminal); redrawn lines are cut to fit it.</param>
    public ProgressBar(TextWriter output, bool isTerminal, string label, int total, int? columns = null)
    {
        _out = output;
        _tty = isTerminal;
        _label = label;
        _total = Math.Max(1, total);
        _columns = columns ?? (isTerminal ? TerminalColumns() : null);
    }

    /// <summary>Console.WindowWidth when there is a terminal to ask, else null.</summary>
    public static int? TerminalColumns()
    {
        try { return Console.WindowWidth is > 0 and var w ? w : null; }
        catch (IOException) { return null; }
        catch (PlatformNotSupportedException) { return null; }
    }

    /// <summary>
    /// A line cut to one column less than the terminal: a line as wide as the terminal wraps, and
    /// then every "\r" redraw starts a new line instead of replacing the old one.
    /// </summary>
    public static string Fit(string line, int? columns) =>
        columns is int c && c > 1 && line.Length > c - 1 ? line[..(c - 1)] : line;

    /// <summary>True when stdout is a terminal (not redirected), TERM is not "dumb" and CI is not "true".</summary>
    public static bool StdoutIsTerminal => !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("TERM") != "dumb" && !RunningInCi;

    /// <summary>CI=true, as CI services set it: no redraws, whatever the output is.</summary>
    public static bool RunningInCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public TimeSpan Elapsed => _clock.Elapsed;

    /// <summary>Reports that <paramref name="done"/> of the epoch's iterations have finished.</summary>
    public void Update(int done, double meanLoss, double lr, double imagesPerSec)
    {
        var line = Format(done, meanLoss, lr, imagesPerSec);
        if (_tty)
        {
            line = Fit(line, _columns);
            var pad = Math.Max(0, _lastWidth - line.Length);
            _out.Write("\r" + line + new string(' ', pad));
            _lastWidth = line.Length;
            _out.Flush();
            return;
        }
        var step = Math.Max(1, _total / 10);
        var now = _clock.Elapsed;
        if (done == _total || done - Math.Max(0, _lastPrinted) >= step || _lastPrinted < 0 && done > 0 && done >= step || now - _lastPrint >= TimeSpan.FromSeconds(30))
        {
            _out.WriteLine(line);
            _lastPrint = now;
            _lastPrinted = done;
        }
    }

    /// <summary>Ends the line (terminal) so the next output starts fresh.</summary>
    public void Finish()
    {
        if (_tty && _lastWidth > 0) _out.WriteLine();
        _lastWidth = 0;
    }

    public string Format(int done, double meanLoss, double lr, double imagesPerSec)
    {
        var frac = Math.Clamp((double)done / _total, 0, 1);
        const int width = 20;
        var filled = (int)Math.Round(frac * width);
        var bar = new string('#', filled) + new string('.', width - filled);
        var elapsed = _clock.Elapsed.TotalSeconds;
        var eta = done > 0 ? elapsed / done * (_total - done) : double.NaN;
        // Loss and lr are left out when not given (NaN / 0), e.g. for evaluation passes.
        var loss = double.IsNaN(meanLoss) ? "" : string.Create(CultureInfo.InvariantCulture, $" loss {meanLoss:0.0000}");
        var rate = lr > 0 ? string.Create(CultureInfo.InvariantCulture, $" lr {lr:0.######}") : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"{_label} [{bar}] {done}/{_total}{loss}{rate} {imagesPerSec:0.0} img/s ETA {Duration(eta)}");
    }

    public static string Duration(double seconds)
    {
        if (double.IsNaN(seconds) || double.IsInfinity(seconds)) return "--";
        var t = TimeSpan.FromSeconds(Math.Max(0, Math.Round(seconds)));
        return t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:00}m" : t.TotalMinutes >= 1 ? $"{t.Minutes}m{t.Seconds:00}s" : $"{t.Seconds}s";
    }
}
