using DeepLabTorch.Cli.Progress;
using Microsoft.Extensions.Logging;

namespace DeepLabTorch.Cli.Logging;

/// <summary>
/// The CLI's console sink for Microsoft.Extensions.Logging: every message on stderr, information (and debug,
/// trace) as plain lines, warnings and errors with their level in front. stdout is left to results (a table,
/// JSON, a summary line), so `deeplab eval ... > result.txt` or `--log-level warning` never mixes the two.
/// Synchronous, so that lines and progress bars keep their order (the stock console provider writes from a
/// background queue); an open progress line on the terminal is ended first, so a message never starts in the
/// middle of a bar. The text is the message's own formatting, which Microsoft.Extensions.Logging does in the
/// invariant culture ("{Loss:0.0000}" is 0.5000 everywhere).
/// </summary>
public sealed class ConsoleSink : ILoggerProvider
{
    private readonly TextWriter _err;
    private readonly string _tag;
    private readonly TerminalLine _line;

    /// <param name="stderr">Where the messages go (default: this process's stderr).</param>
    /// <param name="tag">Put before every line (e.g. "rank 1: " for the other processes of a data-parallel run).</param>
    /// <param name="line">The console shared with the progress renderer (default: this process's).</param>
    public ConsoleSink(TextWriter? stderr = null, string tag = "", TerminalLine? line = null)
    {
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
            var prefix = logLevel switch
            {
                LogLevel.Trace => "trace: ",
                LogLevel.Debug => "debug: ",
                LogLevel.Information => "",
                LogLevel.Warning => "warning: ",
                _ => "error: ",
            };
            lock (owner._line.Gate)
            {
                owner._line.End();
                owner._err.WriteLine(owner._tag + prefix + text);
                owner._err.Flush();
            }
        }
    }
}
