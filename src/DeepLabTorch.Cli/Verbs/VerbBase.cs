using CommandLine;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeepLabTorch.Cli.Verbs;

/// <summary>What every verb takes: the log level and --quiet, and the logger factory Program sets up from them.</summary>
public abstract class VerbBase : IVerb
{
    [Option("log-level", HelpText = "Messages from this level up: trace, debug, information, warning or error (default: information).")]
    public string LogLevel { get; set; } = "information";

    [Option('q', "quiet", HelpText = "Only warnings and errors, and no progress bars.")]
    public bool Quiet { get; set; }

    /// <summary>Set by Program before Run: every message goes through it (to stderr), under its area's category.</summary>
    internal ILoggerFactory Loggers { get; set; } = NullLoggerFactory.Instance;

    /// <summary>Where the verb writes its results (tables, JSON, summary lines) and nothing else; set by Program (stdout).</summary>
    internal TextWriter Results { get; set; } = Console.Out;

    /// <summary>The arguments as typed after the program name (verb included), set by Program: what `train --nproc` passes on to mpirun.</summary>
    internal IReadOnlyList<string> Arguments { get; set; } = Array.Empty<string>();

    /// <summary>Switches given as false (by long name, e.g. "freeze-bn"), set by Program: they turn off a true from a config file or a checkpoint's record.</summary>
    internal IReadOnlySet<string> SwitchedOff { get; set; } = new HashSet<string>();

    /// <summary>The level --log-level and --quiet ask for.</summary>
    public LogLevel MinimumLevel()
    {
        var level = LogLevel.Trim().ToLowerInvariant() switch
        {
            "trace" => Microsoft.Extensions.Logging.LogLevel.Trace,
            "debug" => Microsoft.Extensions.Logging.LogLevel.Debug,
            "information" or "info" => Microsoft.Extensions.Logging.LogLevel.Information,
            "warning" or "warn" => Microsoft.Extensions.Logging.LogLevel.Warning,
            "error" => Microsoft.Extensions.Logging.LogLevel.Error,
            _ => throw new UserException($"--log-level must be trace, debug, information, warning or error, got '{LogLevel}'"),
        };
        return Quiet && level < Microsoft.Extensions.Logging.LogLevel.Warning ? Microsoft.Extensions.Logging.LogLevel.Warning : level;
    }

    public abstract int Run();
}
