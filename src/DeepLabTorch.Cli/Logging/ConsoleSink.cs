using DeepLabTorch.Cli.Progress;
using Microsoft.Extensions.Logging;

namespace DeepLabTorch.Cli.Logging;

/// <summary>
/// The CLI's console sink for Microsoft.Extensions.Logging: information (and debug, trace) as plain
/// lines on stdout, warnings and errors on stderr with their level in front. Synchronous, so that lines
/// and progress bars keep their order (the stock console provider writes from a background queue); an open
/// progress line on the terminal is ended first, so a message never starts in the middle of a bar.
/// </summary>
public sealed class ConsoleSink : ILoggerProvider
{
    private readonly TextWriter _out;
    private readonly TextWriter _err;
    private readonly string _tag;
    private readonly TerminalLine _line;

    /// <param name="tag">Put before every line (e.g. "rank 1: " for the other processes of a data-parallel run).</param>
    /// <param name="line">The console shared with the progress renderer (default: this process's).</param>
    public ConsoleSink(TextWriter? stdout = null, TextWriter? stderr = null, string tag = "", TerminalLine? line = null)
    {
        _out = stdout ?? Console.Out;
        _err = stderr ?? Console.Error;
        _tag = tag;
        _line = line ?? TerminalLine.Console;
    }

    public ILogger CreateLogger(string categoryName) => new Sink(this);

    public void Dispose() { }

    private sealed class Sink(ConsoleSink owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var text = formatter(state, exception);
            var (writer, prefix) = logLevel switch
            {
                LogLevel.Trace => (owner._out, "trace: "),
                LogLevel.Debug => (owner._out, "debug: "),
                LogLevel.Information => (owner._out, ""),
                LogLevel.Warning => (owner._err, "warning: "),
                _ => (owner._err, "error: "),
            };
            lock (owner._line.Gate)
            {
                owner._line.End();
                writer.WriteLine(owner._tag + prefix + text);
                writer.Flush();
            }
        }
    }
}
