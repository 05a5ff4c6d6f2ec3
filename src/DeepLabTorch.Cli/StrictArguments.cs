using System.Collections;
using System.Reflection;
using CommandLine;

namespace DeepLabTorch.Cli;

/// <summary>A mistake in the words typed, found before CommandLineParser sees them; Program prints it in its one-line format.</summary>
public sealed class ArgumentsException(string? verb, string message) : Exception(message)
{
    public string? Verb { get; } = verb;
}

/// <summary>
/// A pass over the arguments before CommandLineParser, for what it lets through silently: it ignores
/// words that belong to no option, reads "--freeze-bn false" as the switch plus an ignored word, takes
/// the default when a value-less option ends the line, and knows only our hyphenated spellings. Here
/// every word must be consumed by an option or a positional slot, switches take an optional true|false,
/// the reference train.py's underscore spellings map to ours, and -h/help VERB/version become what
/// the parser understands.
/// </summary>
public static class StrictArguments
{
    private sealed record OptionInfo(string LongName, bool IsSwitch, bool IsSequence);

    private static readonly string[] HelpWords = { "--help", "-h", "-?" };

    public static string[] Normalise(string[] args, IReadOnlyList<Type> verbs) => Normalise(args, verbs, out _);

    /// <param name="switchedOff">The switches given as false ("freeze-bn"): a base config's true is turned off by them.</param>
    public static string[] Normalise(string[] args, IReadOnlyList<Type> verbs, out IReadOnlySet<string> switchedOff)
    {
        var off = new HashSet<string>(StringComparer.Ordinal);
        switchedOff = off;
        if (args.Length == 0) return args;
        if (args[0] is "help" or "-h" or "-?")
            return args.Length > 1 && FindVerb(args[1], verbs) is not null ? new[] { args[1], "--help" } : new[] { "--help" };
        if (args is ["version"]) return new[] { "--version" };
        var verb = FindVerb(args[0], verbs);
        if (verb is null) return args; // the parser names an unknown verb
        var name = verb.GetCustomAttribute<VerbAttribute>()!.Name;
        // Help anywhere after the verb wins, whatever else is on the line (data synth --help included).
        if (args.Skip(1).TakeWhile(a => a != "--").Any(a => HelpWords.Contains(a)) || args is [_, "help", ..]) return new[] { name, "--help" };
        return Walk(name, args, Options(verb), ValueSlots(verb), off);
    }

    private static Type? FindVerb(string word, IReadOnlyList<Type> verbs) =>
        verbs.FirstOrDefault(t => t.GetCustomAttribute<VerbAttribute>()!.Name == word);

    private static string[] Walk(string verb, string[] args, Dictionary<string, OptionInfo> options, int valueSlots, HashSet<string> off)
    {
        var result = new List<string> { args[0] };
        for (int i = 1; i < args.Length; i++)
        {
            var word = args[i];
            if (word == "--")
            {
                result.AddRange(args.Skip(i));
                break;
            }
            if (!LooksLikeOption(word))
            {
                if (valueSlots-- <= 0) throw new ArgumentsException(verb, $"unexpected argument '{word}': it belongs to no option");
                result.Add(word);
                continue;
            }
            var (flag, inline) = SplitInline(word);
            var option = Lookup(flag, options);
            if (option is null) throw new ArgumentsException(verb, $"unknown option '{flag}'");
            var canonical = "--" + option.LongName;
            if (option.IsSwitch)
            {
                var value = inline;
                if (value is null && i + 1 < args.Length && IsBoolean(args[i + 1])) value = args[++i];
                if (value is not null && !IsBoolean(value))
                    throw new ArgumentsException(verb, $"{canonical} is a switch: give it alone, or with true or false, got '{value}'");
                if (value is null || bool.Parse(value)) result.Add(canonical);
                else off.Add(option.LongName);
                continue;
            }
            var values = new List<string>();
            if (inline is { Length: 0 }) throw new ArgumentsException(verb, $"{canonical} needs a value");
            if (inline is not null) values.Add(inline);
            else
                while (i + 1 < args.Length && !LooksLikeOption(args[i + 1]) && (values.Count == 0 || option.IsSequence))
                    values.Add(args[++i]);
            if (values.Count == 0) throw new ArgumentsException(verb, $"{canonical} needs a value");
            result.Add(canonical);
            result.AddRange(values);
        }
        return result.ToArray();
    }

    /// <summary>"--x" or "-x", but not a negative number such as "-1" or "-1e-3".</summary>
    private static bool LooksLikeOption(string word) =>
        word.Length > 1 && word[0] == '-' && !double.TryParse(word, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out _);

    private static bool IsBoolean(string word) => word.Equals("true", StringComparison.OrdinalIgnoreCase) || word.Equals("false", StringComparison.OrdinalIgnoreCase);

    private static (string Flag, string? Inline) SplitInline(string word)
    {
        int eq = word.IndexOf('=');
        return word.StartsWith("--", StringComparison.Ordinal) && eq > 2 ? (word[..eq], word[(eq + 1)..]) : (word, null);
    }

    /// <summary>"--start_epoch" finds start-epoch: the reference's spelling of our options.</summary>
    private static OptionInfo? Lookup(string flag, Dictionary<string, OptionInfo> options)
    {
        if (options.TryGetValue(flag, out var o)) return o;
        return flag.StartsWith("--", StringComparison.Ordinal) && options.TryGetValue(flag.Replace('_', '-'), out o) ? o : null;
    }

    private static Dictionary<string, OptionInfo> Options(Type verb)
    {
        var map = new Dictionary<string, OptionInfo>(StringComparer.Ordinal);
        foreach (var p in verb.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (p.GetCustomAttribute<OptionAttribute>() is not { } a) continue;
            var type = Nullable.GetUnderlyingType(p.PropertyType) ?? p.PropertyType;
            var info = new OptionInfo(a.LongName, type == typeof(bool),
                type != typeof(string) && typeof(IEnumerable).IsAssignableFrom(type));
            if (!string.IsNullOrEmpty(a.LongName)) map["--" + a.LongName] = info;
            if (!string.IsNullOrEmpty(a.ShortName)) map["-" + a.ShortName] = info;
        }
        return map;
    }

    /// <summary>How many words the verb's positional values take: one each, or any number once one is a sequence (bench's key=value settings).</summary>
    private static int ValueSlots(Type verb)
    {
        var values = verb.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.GetCustomAttribute<ValueAttribute>() is not null).ToList();
        return values.Any(p => p.PropertyType != typeof(string) && typeof(IEnumerable).IsAssignableFrom(p.PropertyType)) ? int.MaxValue : values.Count;
    }
}
