using Microsoft.Extensions.Logging;

namespace DeepLabTorch.Cli.Logging;

/// <summary>
/// The CLI's console sink for Microsoft.Extensions.Logging: information (and debug, trace) as plain
/// lines on stdout, warnings and errors on stderr with their level in front. Synchronous, so that lines
/// and progress bars keep their order (the stock console provider writes from a background queue).
/// </summary>
public sealed class ConsoleSink : ILoggerProvider
{
    private static readonly object Gate = new();
    private readonly TextWriter _out;
    private readonly TextWriter _err;
    private readonly string _tag;

    /// <param name="tag">Put before every line (e.g. "rank 1: " for the other processes of a data-parallel run).</param>
    public ConsoleSink(TextWriter? stdout = null, TextWriter? stderr = null, string tag = "")
    {
        _out = stdout ?? Console.Out;
        _err = stderr ?? Console.Error;
        _tag = tag;
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
            lock (Gate)
            {
                writer.WriteLine(owner._tag + prefix + text);
                writer.Flush();
            }
        }
    }
}
