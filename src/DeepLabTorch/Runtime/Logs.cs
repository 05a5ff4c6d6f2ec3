using System.Globalization;
using Microsoft.Extensions.Logging;
using Serilog;
using Serilog.Extensions.Logging;

namespace DeepLabTorch.Runtime;

/// <summary>
/// The logger categories, one per area, as a user filters them. The library logs through
/// Microsoft.Extensions.Logging only: every API that reports takes an ILogger or ILoggerFactory from its
/// caller (there is no static logger and no Action&lt;string&gt; callback), and every message is a template
/// with named properties ("epoch {Epoch}/{Epochs}: mean loss {Loss:0.0000}"), so a structured sink gets the
/// values. Text that may hold braces (a JSON config, a file name) goes in as a property value, never as
/// template text. The library never writes to the console; tests/.../Runtime/LoggingRulesTests enforces both.
/// </summary>
internal static class LogCategories
{
    public const string Training = "DeepLabTorch.Training";
    public const string Data = "DeepLabTorch.Data";
    public const string Checkpoints = "DeepLabTorch.Checkpoints";
    public const string Inference = "DeepLabTorch.Inference";
    public const string Export = "DeepLabTorch.Export";
    public const string Runtime = "DeepLabTorch.Runtime";
    public const string Serving = "DeepLabTorch.Serving";
}

/// <summary>
/// A logger factory for one training run: every message goes to the caller's factory (console, or the
/// user's own logging) and, from Debug up, to the run folder's log file through Serilog's file sink, so
/// the file keeps details (the resolved config) that the console leaves out. Disposing it closes the file.
/// </summary>
internal sealed class RunLoggerFactory : ILoggerFactory
{
    private readonly ILoggerFactory _outer;
    private readonly SerilogLoggerProvider _file;

    public RunLoggerFactory(ILoggerFactory outer, string logPath)
    {
        _outer = outer;
        var fileLogger = new LoggerConfiguration()
            .MinimumLevel.Debug()
            // Serilog renders the message from its template and properties itself, with this format provider:
            // invariant, so "{Loss:0.0000}" reads 0.5000 in the file under any culture, as on the console.
            .WriteTo.File(logPath, outputTemplate: "{Timestamp:yyyy-MM-dd HH:mm:ss.fff} {Level:u3} {SourceContext}: {Message:l}{NewLine}{Exception}",
                formatProvider: CultureInfo.InvariantCulture, shared: false, flushToDiskInterval: TimeSpan.FromSeconds(1))
            .CreateLogger();
        _file = new SerilogLoggerProvider(fileLogger, dispose: true);
        LogPath = logPath;
    }

    public string LogPath { get; }

    public Microsoft.Extensions.Logging.ILogger CreateLogger(string categoryName) =>
        new Both(_outer.CreateLogger(categoryName), _file.CreateLogger(categoryName));

    /// <summary>Providers belong to the caller's factory; add them there.</summary>
    public void AddProvider(ILoggerProvider provider) => _outer.AddProvider(provider);

    /// <summary>A logger that writes to the log file only (for what the caller reports on the console itself, such as a fatal error).</summary>
    public Microsoft.Extensions.Logging.ILogger CreateFileLogger(string categoryName) => _file.CreateLogger(categoryName);

    public void Dispose() => _file.Dispose();

    private sealed class Both(Microsoft.Extensions.Logging.ILogger a, Microsoft.Extensions.Logging.ILogger b) : Microsoft.Extensions.Logging.ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => a.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => a.IsEnabled(logLevel) || b.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (a.IsEnabled(logLevel)) a.Log(logLevel, eventId, state, exception, formatter);
            if (b.IsEnabled(logLevel)) b.Log(logLevel, eventId, state, exception, formatter);
        }
    }
}
