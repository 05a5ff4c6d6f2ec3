using DeepLabTorch.Cli.Logging;
using DeepLabTorch.Cli.Progress;
using DeepLabTorch.Runtime;
using Microsoft.Extensions.Logging;
using Xunit;

namespace DeepLabTorch.Tests.Cli;

/// <summary>The CLI's one progress renderer: the line it writes, terminal redraws, redirected lines and quiet.</summary>
public class ConsoleProgressTests
{
    /// <summary>A clock the test moves by hand.</summary>
    private sealed class Clock
    {
        public TimeSpan Now { get; set; }
        public TimeSpan Read() => Now;
    }

    private static ProgressReport Epoch(long done, long total, double seconds = 10) =>
        new("epoch 1/2", done, total, "", TimeSpan.FromSeconds(seconds))
        {
            Fields = new[] { new ProgressField("loss", "0.5000"), new ProgressField("lr", "0.007") },
            Rate = (8, "img"),
        };

    private static ProgressReport Frames(long done, long? total = 1000) => new("clip.mp4", done, total, "frames", TimeSpan.FromSeconds(done));

    private static int CountOf(string s, char c) => s.Count(x => x == c);

    /// <summary>What followed each "\r": the frames a terminal showed, the line end cut off (and the blanking spaces, unless raw).</summary>
    private static List<string> FramesOf(string output, bool raw = false) =>
        output.Split('\r').Skip(1).Select(f => f.Split('\n')[0]).Select(f => raw ? f : f.TrimEnd(' ')).ToList();

    [Fact]
    public void TheLineShowsLabelBarCountFieldsRateAndEta()
    {
        // 3 of 5: 12 of 20 bar cells; 10 s for 3 → 2 more take 6.67 s, shown as 7s.
        Assert.Equal("epoch 1/2 [############........] 3/5 loss 0.5000 lr 0.007 8.0 img/s ETA 7s", ConsoleProgress.Format(Epoch(3, 5)));
        // Rate from the count: 4 images in 2 s.
        Assert.Equal("predict [####################] 4/4 images 2.0 images/s ETA 0s",
            ConsoleProgress.Format(new ProgressReport("predict", 4, 4, "images", TimeSpan.FromSeconds(2))));
        // 250 of 1000 in 2 s: 125/s (no decimal from 100 up), 5 cells, 750 more take 6 s.
        Assert.Equal("predict [#####...............] 250/1000 images 125 images/s ETA 6s",
            ConsoleProgress.Format(new ProgressReport("predict", 250, 1000, "images", TimeSpan.FromSeconds(2))));
        // Unknown total: no bar and no ETA.
        Assert.Equal("clip.mp4 7 frames 3.5 frames/s",
            ConsoleProgress.Format(new ProgressReport("clip.mp4", 7, null, "frames", TimeSpan.FromSeconds(2))));
        Assert.Equal("1m05s", ProgressReport.Duration(65));
        Assert.Equal("1h02m", ProgressReport.Duration(3725));
        Assert.Equal("--", ProgressReport.Duration(double.NaN));
    }

    /// <summary>The old per-epoch bar's terminal behaviour: a redraw per report (a second apart), one line in all.</summary>
    [Fact]
    public void TerminalRedrawsOneLineInPlace()
    {
        var tty = new StringWriter();
        var clock = new Clock();
        var p = new ConsoleProgress(tty, ProgressMode.Terminal, columns: 200, clock.Read, new TerminalLine());
        for (var i = 1; i <= 5; i++)
        {
            p.Report(Epoch(i, 5));
            clock.Now += TimeSpan.FromSeconds(1);
        }
        p.Report(Epoch(5, 5) with { Final = true }); // the end told twice is drawn once
        var text = tty.ToString();
        Assert.Equal(5, CountOf(text, '\r'));
        Assert.Single(text.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.EndsWith("\n", text);
        Assert.Equal(ConsoleProgress.Format(Epoch(5, 5)), FramesOf(text)[^1]);
    }

    /// <summary>At most five redraws a second: reports 50 ms apart draw every fourth, plus the last.</summary>
    [Fact]
    public void TerminalRedrawsAtMostFiveTimesASecond()
    {
        var tty = new StringWriter();
        var clock = new Clock();
        var p = new ConsoleProgress(tty, ProgressMode.Terminal, columns: 200, clock.Read, new TerminalLine());
        for (var i = 1; i <= 100; i++)
        {
            clock.Now = TimeSpan.FromMilliseconds(50 * (i - 1));
            p.Report(Frames(i, 100));
        }
        // Drawn at 0, 200, ..., 4800 ms (reports 1, 5, ..., 97: 25 of them) and at the end (report 100).
        var frames = FramesOf(tty.ToString());
        Assert.Equal(26, frames.Count);
        Assert.Equal(ConsoleProgress.Format(Frames(97, 100)), frames[^2]);
        Assert.Equal(ConsoleProgress.Format(Frames(100, 100)), frames[^1]);

        // A stopped clock: the first and the last only.
        var still = new StringWriter();
        var q = new ConsoleProgress(still, ProgressMode.Terminal, columns: 200, () => TimeSpan.Zero, new TerminalLine());
        for (var i = 1; i <= 100; i++) q.Report(Frames(i, 100));
        Assert.Equal(new[] { ConsoleProgress.Format(Frames(1, 100)), ConsoleProgress.Format(Frames(100, 100)) }, FramesOf(still.ToString()));
    }

    /// <summary>Frames are cut to one column less than the terminal, and a shorter frame blanks what the longer one left.</summary>
    [Fact]
    public void TerminalFramesFitTheWidthAndCoverTheLastOne()
    {
        var tty = new StringWriter();
        var clock = new Clock();
        var p = new ConsoleProgress(tty, ProgressMode.Terminal, columns: 30, clock.Read, new TerminalLine());
        for (var i = 1; i <= 3; i++)
        {
            p.Report(Epoch(i, 3));
            clock.Now += TimeSpan.FromSeconds(1);
        }
        var frames = FramesOf(tty.ToString(), raw: true);
        Assert.Equal(Enumerable.Range(1, 3).Select(i => ConsoleProgress.Format(Epoch(i, 3))[..29]), frames);

        var wide = new StringWriter();
        var q = new ConsoleProgress(wide, ProgressMode.Terminal, columns: 200, clock.Read, new TerminalLine());
        var longer = Frames(1) with { Fields = new[] { new ProgressField("file", "a-rather-long-file-name.png") } };
        q.Report(longer);
        clock.Now += TimeSpan.FromSeconds(1);
        q.Report(Frames(2));
        var drawn = FramesOf(wide.ToString(), raw: true);
        Assert.Equal(ConsoleProgress.Format(longer), drawn[0]);
        Assert.Equal(ConsoleProgress.Format(longer).Length, drawn[1].Length);
        Assert.Equal(ConsoleProgress.Format(Frames(2)), drawn[1].TrimEnd(' '));
    }

    /// <summary>A new task, and a log message through ConsoleSink, end the open line instead of writing into it.</summary>
    [Fact]
    public void ANewLabelOrAMessageEndsTheOpenLine()
    {
        var tty = new StringWriter();
        var clock = new Clock();
        var line = new TerminalLine();
        var p = new ConsoleProgress(tty, ProgressMode.Terminal, columns: 200, clock.Read, line);
        var a = new ProgressReport("a", 1, 3, "images", TimeSpan.FromSeconds(1));
        var b = new ProgressReport("b", 1, 3, "images", TimeSpan.FromSeconds(1));
        p.Report(a);
        p.Report(b);
        using var sink = new ConsoleSink(tty, line: line);
        sink.CreateLogger("test").Log(LogLevel.Warning, "skipped x.png: not an image");
        clock.Now += TimeSpan.FromSeconds(1);
        p.Report(b with { Done = 2 });
        Assert.Equal("\r" + ConsoleProgress.Format(a) + "\n" + "\r" + ConsoleProgress.Format(b) + "\n" + "warning: skipped x.png: not an image\n" +
            "\r" + ConsoleProgress.Format(b with { Done = 2 }), tty.ToString());
        // Information has no prefix, and the bar's line is ended first as well.
        sink.CreateLogger("test").Log(LogLevel.Information, "end");
        Assert.EndsWith(ConsoleProgress.Format(b with { Done = 2 }) + "\nend\n", tty.ToString());
    }

    /// <summary>Redirected: a line for each tenth of the total, none of them redrawn, however fast the reports come.</summary>
    [Fact]
    public void RedirectedPrintsOneLinePerTenth()
    {
        var w = new StringWriter();
        var p = new ConsoleProgress(w, ProgressMode.Lines, clock: () => TimeSpan.Zero, line: new TerminalLine());
        for (var i = 1; i <= 1000; i++) p.Report(Frames(i));
        p.Report(Frames(1000) with { Final = true });
        var lines = w.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(Enumerable.Range(1, 10).Select(k => ConsoleProgress.Format(Frames(100 * k))), lines);
        Assert.DoesNotContain('\r', w.ToString());

        // The training bar's case: 100 iterations, 10 lines, the last with the loss, the rate and the ETA.
        var plain = new StringWriter();
        var q = new ConsoleProgress(plain, ProgressMode.Lines, clock: () => TimeSpan.Zero, line: new TerminalLine());
        for (var i = 1; i <= 100; i++) q.Report(Epoch(i, 100));
        var epochLines = plain.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(10, epochLines.Length);
        Assert.Equal("epoch 1/2 [####################] 100/100 loss 0.5000 lr 0.007 8.0 img/s ETA 0s", epochLines[^1]);
    }

    /// <summary>Redirected: a line every 30 s between tenths, and the final line of a task cut short.</summary>
    [Fact]
    public void RedirectedPrintsEveryThirtySecondsAndAtTheEnd()
    {
        var w = new StringWriter();
        var clock = new Clock();
        var p = new ConsoleProgress(w, ProgressMode.Lines, clock: clock.Read, line: new TerminalLine());
        for (var i = 1; i <= 50; i++)
        {
            clock.Now = TimeSpan.FromSeconds(i);
            p.Report(Frames(i));
        }
        p.Report(Frames(50) with { Final = true });
        // 50 of 1000 is under a tenth: report 31 (30 s after the first, at 1 s) and the final one.
        Assert.Equal(new[] { ConsoleProgress.Format(Frames(31)), ConsoleProgress.Format(Frames(50)) },
            w.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));

        // Unknown total: the first report, then every 30 s, then the end.
        var u = new StringWriter();
        var q = new ConsoleProgress(u, ProgressMode.Lines, clock: clock.Read, line: new TerminalLine());
        for (var i = 1; i <= 70; i++)
        {
            clock.Now = TimeSpan.FromSeconds(100 + i);
            q.Report(Frames(i, null));
        }
        q.Report(Frames(70, null) with { Final = true });
        Assert.Equal(new[] { 1L, 31, 61, 70 }.Select(d => ConsoleProgress.Format(Frames(d, null))),
            u.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void QuietShowsNothingAndTheModeFollowsTheOutput()
    {
        string? Env(string name) => name switch { "TERM" => "xterm", _ => null };
        Assert.Equal(ProgressMode.Off, ConsoleProgress.ModeFor(quiet: true, redirected: false, linesWhenRedirected: true, Env));
        Assert.Equal(ProgressMode.Off, ConsoleProgress.ModeFor(quiet: true, redirected: true, linesWhenRedirected: true, Env));
        Assert.Equal(ProgressMode.Terminal, ConsoleProgress.ModeFor(quiet: false, redirected: false, linesWhenRedirected: true, Env));
        Assert.Equal(ProgressMode.Lines, ConsoleProgress.ModeFor(quiet: false, redirected: true, linesWhenRedirected: true, Env));
        Assert.Equal(ProgressMode.Off, ConsoleProgress.ModeFor(quiet: false, redirected: true, linesWhenRedirected: false, Env));
        // CI or a dumb terminal: no redraws even on a terminal.
        Assert.Equal(ProgressMode.Lines, ConsoleProgress.ModeFor(false, false, true, n => n == "CI" ? "true" : "xterm"));
        Assert.Equal(ProgressMode.Lines, ConsoleProgress.ModeFor(false, false, true, n => n == "TERM" ? "dumb" : null));
        Assert.Equal(ProgressMode.Terminal, ConsoleProgress.ModeFor(false, false, true, n => n == "CI" ? "false" : "xterm"));
        Assert.True(ConsoleProgress.IsCiValue("1"));
        Assert.False(ConsoleProgress.IsCiValue(""));
        Assert.False(ConsoleProgress.IsCiValue("0"));

        var w = new StringWriter();
        var off = new ConsoleProgress(w, ProgressMode.Off, line: new TerminalLine());
        Assert.Null(off.OrNull);
        for (var i = 1; i <= 10; i++) off.Report(Frames(i, 10));
        Assert.Equal("", w.ToString());
        var lines = new ConsoleProgress(w, ProgressMode.Lines, line: new TerminalLine());
        Assert.Same(lines, lines.OrNull);
    }
}
