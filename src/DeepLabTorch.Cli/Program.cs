using System.Reflection;
using CommandLine;
using DeepLabTorch.Data;
using DeepLabTorch.Torch.Native;

namespace DeepLabTorch.Cli;

public static class Program
{
    /// <summary>Every [Verb] class in this assembly that implements IVerb.</summary>
    public static Type[] VerbTypes() => typeof(Program).Assembly.GetTypes()
        .Where(t => t.GetCustomAttribute<VerbAttribute>() != null && typeof(IVerb).IsAssignableFrom(t) && !t.IsAbstract)
        .OrderBy(t => t.GetCustomAttribute<VerbAttribute>()!.Name, StringComparer.Ordinal)
        .ToArray();

    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var parser = new Parser(s =>
        {
            s.HelpWriter = stderr;
            s.CaseInsensitiveEnumValues = true;
            s.AutoVersion = false;
        });
        var verbs = VerbTypes();
        if (verbs.Length == 0)
        {
            stderr.WriteLine("deeplab: no verbs are built in");
            return 2;
        }
        var parsed = parser.ParseArguments(args, verbs);
        if (parsed is NotParsed<object> notParsed)
        {
            // Help and version requests are not errors.
            return notParsed.Errors.All(e => e is HelpRequestedError or HelpVerbRequestedError or VersionRequestedError) ? 0 : 2;
        }
        var verb = (IVerb)((Parsed<object>)parsed).Value;
        try
        {
            return verb.Run();
        }
        catch (Exception e) when (Environment.GetEnvironmentVariable("DEEPLAB_DEBUG") != "1")
        {
            stderr.WriteLine("deeplab: " + Describe(e));
            return e is UserException or DataException or ArgumentException or FileNotFoundException or DirectoryNotFoundException ? 2 : 1;
        }
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
        return e is TorchException ? "libtorch error: " + text : text;
    }
}
