using Microsoft.Extensions.Logging;

namespace DeepLabTorch.Tests;

/// <summary>A logger factory whose loggers keep every message (any category, any level) for assertions.</summary>
internal sealed class CapturingLoggers : ILoggerFactory, ILogger
{
    private readonly List<(LogLevel Level, string Text)> _entries = new();

    public IReadOnlyList<(LogLevel Level, string Text)> Entries
    {
        get { lock (_entries) return _entries.ToList(); }
    }

    public IReadOnlyList<string> Lines => Entries.Select(e => e.Text).ToList();

    public override string ToString() => string.Join("\n", Lines);

    public ILogger CreateLogger(string categoryName) => this;
    public void AddProvider(ILoggerProvider provider) { }
    public void Dispose() { }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (_entries) _entries.Add((logLevel, formatter(state, exception)));
    }
}
