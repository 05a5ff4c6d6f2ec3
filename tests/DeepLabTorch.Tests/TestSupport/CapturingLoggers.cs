using Microsoft.Extensions.Logging;

namespace DeepLabTorch.Tests;

/// <summary>
/// A logger factory whose loggers keep every message (any category, any level) for assertions: the text as a
/// console shows it, and the named properties a structured sink would get ({OriginalFormat}, the template, among them).
/// </summary>
internal sealed class CapturingLoggers : ILoggerFactory, ILogger
{
    /// <summary>One message: its level, its text, and its properties by name.</summary>
    public sealed record Record(LogLevel Level, string Text, IReadOnlyDictionary<string, object?> Properties);

    private readonly List<Record> _records = new();

    public IReadOnlyList<Record> Records
    {
        get { lock (_records) return _records.ToList(); }
    }

    public IReadOnlyList<(LogLevel Level, string Text)> Entries => Records.Select(r => (r.Level, r.Text)).ToList();

    public IReadOnlyList<string> Lines => Records.Select(e => e.Text).ToList();

    public override string ToString() => string.Join("\n", Lines);

    public ILogger CreateLogger(string categoryName) => this;
    public void AddProvider(ILoggerProvider provider) { }
    public void Dispose() { }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        var properties = state is IEnumerable<KeyValuePair<string, object?>> pairs
            ? pairs.GroupBy(p => p.Key).ToDictionary(g => g.Key, g => g.First().Value)
            : new Dictionary<string, object?>();
        lock (_records) _records.Add(new Record(logLevel, formatter(state, exception), properties));
    }
}
