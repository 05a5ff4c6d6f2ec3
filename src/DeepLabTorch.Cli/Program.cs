using System.Reflection;
using CommandLine;
using CommandLine.Text;
using DeepLabTorch.Data;
using DeepLabTorch.Cli.Logging;
using DeepLabTorch.Cli.Progress;
using DeepLabTorch.Cli.Verbs;
using DeepLabTorch.Runtime;
using Microsoft.Extensions.Logging;

namespace DeepLabTorch.Cli;

public static class Program
{
    /// <summary>Every [Verb] class in this assembly that implements IVerb, and the verbs whose flags are built from settings (train).</summary>
    public static Type[] VerbTypes() => typeof(Program).Assembly.GetTypes()
        .Where(t => t.GetCustomAttribute<VerbAttribute>() != null && typeof(IVerb).IsAssignableFrom(t) && !t.IsAbstract)
        .Append(TrainVerb.FlagsType)
        .OrderBy(t => t.GetCustomAttribute<VerbAttribute>()!.Name, StringComparer.Ordinal)
        .ToArray();

    public static int Main(string[] args)
    {
        // A child started by the CPU-kernel guard: run the known-answer check and nothing else (its protocol on stdout).
        if (args.Length > 0 && args[0] == KernelGuard.ChildArgument) return KernelCheckChild.Run(args[1..], Console.Out, Console.Error);
        KernelGuard.Probe ??= ChildProcessProbe.ForThisProcess();
        // Before anything allocates tensors: freed native memory stays in the heap for the next step
        // (NativeHeap; DEEPLAB_MALLOC=system leaves glibc's defaults).
        try
        {
            NativeHeap.KeepFreedMemory();
        }
        catch (UserException e)
        {
            Console.Error.WriteLine($"deeplab: {e.Message}");
            return 2;
        }
        return Run(args, Console.Out, Console.Error);
    }

    /// <summary>
    /// Runs one command. <paramref name="stdout"/> carries results only (a table, JSON, a summary line, help);
    /// <paramref name="stderr"/> carries every log message (information without a prefix, "warning: " and
    /// "error: " lines) and the final one-line error. Progress bars go to the process's stderr (they need to know
    /// whether it is a terminal). --log-level and --quiet filter the messages, never the results.
    /// </summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var parser = new Parser(s =>
        {
            s.HelpWriter = null; // help and errors are written below: full help on request, one line on a mistake
            s.CaseInsensitiveEnumValues = true;
            s.AutoVersion = false;
        });
        var verbs = VerbTypes();
        if (verbs.Length == 0)
        {
            stderr.WriteLine("deeplab: no verbs are built in");
            return 2;
        }
        IReadOnlySet<string> switchedOff;
        var typed = args.ToArray();
        try
        {
            args = StrictArguments.Normalise(args, verbs, out switchedOff);
        }
        catch (ArgumentsException e)
        {
            var where = e.Verb is null ? "deeplab --help lists the verbs" : $"deeplab {e.Verb} --help lists its options";
            stderr.WriteLine($"deeplab{(e.Verb is null ? "" : " " + e.Verb)}: {e.Message} ({where})");
            return 2;
        }
        if (args is ["--version"])
        {
            var version = typeof(Program).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
            stdout.WriteLine($"deeplab {version} (TorchSharp {TorchRuntime.TorchSharpVersion}, libtorch {TorchRuntime.LibTorchVersion})");
            return 0;
        }
        var parsed = parser.ParseArguments(args, verbs);
        if (parsed is NotParsed<object> notParsed)
        {
            var help = HelpText.AutoBuild(parsed, h =>
            {
                h.AdditionalNewLineAfterOption = false;
                h.AddDashesToOption = true;
                return h;
            }, e => e, verbsIndex: notParsed.TypeInfo.Current == typeof(NullInstance));
            // Help and version requests are not errors: the full help goes to stdout.
            if (notParsed.Errors.All(e => e is HelpRequestedError or HelpVerbRequestedError or VersionRequestedError))
            {
                stdout.WriteLine(help);
                return 0;
            }
            if (notParsed.Errors.Any(e => e is NoVerbSelectedError))
            {
                stderr.WriteLine(help);
                return 2;
            }
            // A mistake: one line that names it, and where to look.
            var verbName = notParsed.TypeInfo.Current.GetCustomAttribute<VerbAttribute>()?.Name;
            var format = SentenceBuilder.Create().FormatError;
            var messages = notParsed.Errors
                .Select(e => e is BadFormatConversionError bad ? BadValue(bad.NameInfo.LongName, notParsed.TypeInfo.Current, args) ?? format(e) : format(e))
                .Where(m => m.Length > 0).Distinct().ToList();
            var where = verbName is null ? "deeplab --help lists the verbs" : $"deeplab {verbName} --help lists its options";
            stderr.WriteLine($"deeplab{(verbName is null ? "" : " " + verbName)}: {string.Join("; ", messages)} ({where})");
            return 2;
        }
        var verb = (IVerb)((Parsed<object>)parsed).Value;
        ILoggerFactory? loggers = null;
        // Verbs change process-wide settings (libtorch's thread count, the CPU-kernel configuration); a run
        // in-process (tests, a host program) gets them back afterwards.
        using var restore = ProcessSettings.Capture();
        try
        {
            if (verb is VerbBase options)
            {
                var level = options.MinimumLevel();
                loggers = LoggerFactory.Create(b => b.SetMinimumLevel(level).AddProvider(new ConsoleSink(stderr)));
                options.Loggers = loggers;
                options.Results = stdout;
                options.SwitchedOff = switchedOff;
                options.Arguments = typed;
            }
            return verb.Run();
        }
        catch (Exception e) when (Environment.GetEnvironmentVariable("DEEPLAB_DEBUG") != "1")
        {
            TerminalLine.Console.End(); // the error starts on a line of its own, not after a bar
            stderr.WriteLine("deeplab: " + (FileSystemMessage(e) ?? Describe(e)));
            return e is UserException or DataException or ArgumentException or IOException or UnauthorizedAccessException ? 2 : 1;
        }
        finally
        {
            loggers?.Dispose();
        }
    }

    /// <summary>"--lr expects a number, got 'abc'": the flag, what it takes and the value given.</summary>
    private static string? BadValue(string name, Type verb, string[] args)
    {
        if (string.IsNullOrEmpty(name)) return null;
        var flag = "--" + name;
        string? value = null;
        for (int i = 0; i < args.Length && value == null; i++)
        {
            if (args[i] == flag && i + 1 < args.Length) value = args[i + 1];
            else if (args[i].StartsWith(flag + "=", StringComparison.Ordinal)) value = args[i][(flag.Length + 1)..];
        }
        var type = verb.GetProperties().FirstOrDefault(p => p.GetCustomAttribute<OptionAttribute>()?.LongName == name)?.PropertyType;
        if (value == null || type == null) return null;
        type = Nullable.GetUnderlyingType(type) ?? type;
        var what = type == typeof(int) || type == typeof(long) ? "a whole number"
            : type == typeof(double) || type == typeof(float) ? "a number"
            : type == typeof(bool) ? "no value (it is a switch)"
            : "a value of type " + type.Name;
        return $"{flag} expects {what}, got '{value}'";
    }

    /// <summary>
    /// .NET's file-system messages ("The file 'x' already exists.", "Could not find a part of the path 'x'.")
    /// say neither which of the user's paths it was about nor what to do: this names the path and the
    /// problem in our words. Null for anything else.
    /// </summary>
    public static string? FileSystemMessage(Exception e)
    {
        if (e is not (IOException or UnauthorizedAccessException)) return null;
        var quoted = System.Text.RegularExpressions.Regex.Match(e.Message, "'([^']+)'");
        var path = e is FileNotFoundException { FileName: { } f } ? f : quoted.Success ? quoted.Groups[1].Value : null;
        if (path is null) return null;
        return e switch
        {
            FileNotFoundException => $"{path}: no such file",
            DirectoryNotFoundException => BlockingFile(path) is { } file
                ? $"{path}: {file} is a file, not a folder (remove it, or choose another output)"
                : $"{path}: a folder on this path does not exist",
            UnauthorizedAccessException => $"{path}: permission denied (this user may not read or write it)",
            _ when File.Exists(path) && e.Message.Contains("exists", StringComparison.Ordinal) =>
                $"{path} is a file where a folder must go (remove it, or choose another output)",
            _ when Directory.Exists(path) && e.Message.Contains("exists", StringComparison.Ordinal) =>
                $"{path} is a folder where a file must go (choose a file name)",
            _ when e.Message.Contains("exists", StringComparison.Ordinal) => $"{path} already exists",
            _ => $"{path}: {e.Message.Replace($"'{path}'", "it", StringComparison.Ordinal).TrimEnd('.')}",
        };
    }

    /// <summary>The file standing where a folder of this path should be, if any.</summary>
    private static string? BlockingFile(string path)
    {
        for (var dir = Path.GetDirectoryName(Path.GetFullPath(path)); !string.IsNullOrEmpty(dir); dir = Path.GetDirectoryName(dir))
            if (File.Exists(dir)) return dir;
        return null;
    }

    /// <summary>One line for the user: the message chain, no stack trace.</summary>
    public static string Describe(Exception e)
    {
        var parts = new List<string>();
        for (var x = e; x != null; x = x.InnerException)
        {
            if (x is AggregateException agg && agg.InnerExceptions.Count == 1) continue;
            var m = x.Message.Trim();
            if (m.Length > 0 && !parts.Any(p => p.Contains(m, StringComparison.Ordinal))) parts.Add(m);
        }
        var text = string.Join(": ", parts);
        return e is System.Runtime.InteropServices.ExternalException ? "libtorch error: " + text : text;
    }
}

/// <summary>
/// The process-wide settings a verb may change: libtorch's intra-op thread count and whether oneDNN (mkldnn) is
/// on. Disposing puts them back. (Loggers are not among them: the library takes them as arguments.)
/// </summary>
internal sealed class ProcessSettings : IDisposable
{
    private readonly int? _threads;
    private readonly bool? _mkldnn;

    private ProcessSettings(int? threads, bool? mkldnn)
    {
        _threads = threads;
        _mkldnn = mkldnn;
    }

    public static ProcessSettings Capture()
    {
        try
        {
            TorchRuntime.EnsureLoaded();
            return new ProcessSettings(TorchSharp.torch.get_num_threads(), OperatingSystem.IsLinux() ? LibTorchNative.MkldnnEnabled : null);
        }
        catch (TorchLoadException)
        {
            return new ProcessSettings(null, null); // nothing of libtorch's to restore; the verb reports the failure
        }
    }

    public void Dispose()
    {
        if (_threads is { } t && TorchSharp.torch.get_num_threads() != t) TorchSharp.torch.set_num_threads(t);
        if (_mkldnn is { } m && LibTorchNative.MkldnnEnabled != m) LibTorchNative.MkldnnEnabled = m;
    }
}
