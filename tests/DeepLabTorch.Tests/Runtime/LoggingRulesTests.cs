using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Xunit;

namespace DeepLabTorch.Tests.Runtime;

/// <summary>
/// The library reports through Microsoft.Extensions.Logging only (docs/architecture.md, "Logging"): no
/// Action&lt;string&gt; parameter, property or field named like a logger, no static logger a caller sets, and no
/// use of System.Console, which belongs to the program. In the CLI the console is written only where the
/// design puts it: results through VerbBase.Results (Program gives it stdout), log messages through ConsoleSink,
/// progress through ConsoleProgress, and the final error line in Program (and a rank's, in TrainVerb). The
/// sources are compiled with Roslyn, as for LayeringTests, and each finding names the file and line.
/// </summary>
public class LoggingRulesTests
{
    /// <summary>Names that say "a logger": log, logger, onLog, warn, info, message(s), note(s), print, trace, debug.</summary>
    private static readonly Regex LoggerName = new("log|warn|info|message|note|print|trace|debug", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);

    /// <summary>The CLI files that may touch System.Console, and why.</summary>
    private static readonly string[] CliConsoleFiles =
    [
        "src/DeepLabTorch.Cli/Program.cs",                 // stdout and stderr for Run, the kernel-check child, the final error line
        "src/DeepLabTorch.Cli/Verbs/VerbBase.cs",          // Results' default (stdout) outside Program
        "src/DeepLabTorch.Cli/Verbs/TrainVerb.cs",         // a failed rank's final line, before it aborts the job
        "src/DeepLabTorch.Cli/Logging/ConsoleSink.cs",     // log messages, on stderr
        "src/DeepLabTorch.Cli/Progress/ConsoleProgress.cs", // the progress renderer, on stderr, and the terminal's width
    ];

    private static bool IsOurs(SyntaxTree tree, string root)
    {
        var path = tree.FilePath.Replace('\\', '/');
        return path.StartsWith(root, StringComparison.Ordinal) && !path.Contains("/obj/", StringComparison.Ordinal);
    }

    private static string Where(SyntaxNode node) =>
        $"{node.SyntaxTree.FilePath.Replace('\\', '/')}:{node.GetLocation().GetLineSpan().StartLinePosition.Line + 1}";

    /// <summary>Every use of a System.Console member in the trees under root (one finding per line).</summary>
    internal static IEnumerable<string> ConsoleUses(CSharpCompilation compilation, string root)
    {
        foreach (var tree in compilation.SyntaxTrees.Where(t => IsOurs(t, root)))
        {
            var model = compilation.GetSemanticModel(tree);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var name in tree.GetRoot().DescendantNodes().OfType<SimpleNameSyntax>())
            {
                if (model.GetSymbolInfo(name).Symbol is not { ContainingType: { } type } symbol || type.ToDisplayString() != "System.Console") continue;
                var finding = $"{Where(name)}: uses Console.{symbol.Name}";
                if (seen.Add(finding)) yield return finding;
            }
        }
    }

    private static bool IsStringAction(ITypeSymbol? type) =>
        type is INamedTypeSymbol { Name: "Action", TypeArguments: [{ SpecialType: SpecialType.System_String }] } t
        && t.ContainingNamespace.ToDisplayString() == "System";

    private static bool IsLoggerType(ITypeSymbol? type) =>
        type is INamedTypeSymbol { Name: "ILogger" or "ILoggerFactory" } t
        && t.ContainingNamespace.ToDisplayString() == "Microsoft.Extensions.Logging";

    /// <summary>
    /// Action&lt;string&gt; parameters, properties and fields named like a logger, and static ILogger/ILoggerFactory
    /// properties with a setter or fields that are not readonly: the loggers the library must not have.
    /// </summary>
    internal static IEnumerable<string> LoggerShapes(CSharpCompilation compilation, string root)
    {
        foreach (var tree in compilation.SyntaxTrees.Where(t => IsOurs(t, root)))
        {
            var model = compilation.GetSemanticModel(tree);
            foreach (var node in tree.GetRoot().DescendantNodes())
            {
                switch (node)
                {
                    case ParameterSyntax p when model.GetDeclaredSymbol(p) is { } s && IsStringAction(s.Type) && LoggerName.IsMatch(s.Name):
                        yield return $"{Where(p)}: parameter '{s.Name}' is an Action<string> logger; take an ILogger";
                        break;
                    case PropertyDeclarationSyntax p when model.GetDeclaredSymbol(p) is { } s:
                        if (IsStringAction(s.Type) && LoggerName.IsMatch(s.Name))
                            yield return $"{Where(p)}: property '{s.Name}' is an Action<string> logger; take an ILogger";
                        if (s.IsStatic && IsLoggerType(s.Type) && s.SetMethod is not null)
                            yield return $"{Where(p)}: static settable logger '{s.Name}'; pass the logger to the code that reports";
                        break;
                    case VariableDeclaratorSyntax v when v.Parent?.Parent is FieldDeclarationSyntax && model.GetDeclaredSymbol(v) is IFieldSymbol s:
                        if (IsStringAction(s.Type) && LoggerName.IsMatch(s.Name))
                            yield return $"{Where(v)}: field '{s.Name}' is an Action<string> logger; take an ILogger";
                        if (s.IsStatic && IsLoggerType(s.Type) && !s.IsReadOnly && !s.IsConst)
                            yield return $"{Where(v)}: static settable logger '{s.Name}'; pass the logger to the code that reports";
                        break;
                }
            }
        }
    }

    private static CSharpCompilation Compile(string project)
    {
        var compilation = HiddenScalarTests.Compile(project);
        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).Take(5).ToList();
        Assert.True(errors.Count == 0, "the sources do not compile for the scan:\n" + string.Join("\n", errors));
        return compilation;
    }

    [Fact]
    public void TheLibraryLogsThroughILoggerAndNeverTouchesTheConsole()
    {
        var compilation = Compile("src/DeepLabTorch");
        var found = LoggerShapes(compilation, "src/DeepLabTorch/").Concat(ConsoleUses(compilation, "src/DeepLabTorch/")).ToList();
        Assert.True(found.Count == 0, $"{found.Count} breaches of the logging rules in src/DeepLabTorch:\n" + string.Join("\n", found));
    }

    [Fact]
    public void TheCliWritesToTheConsoleOnlyThroughResultsTheSinkTheProgressAndTheErrorLine()
    {
        var compilation = Compile("src/DeepLabTorch.Cli");
        var found = ConsoleUses(compilation, "src/DeepLabTorch.Cli/")
            .Where(f => !CliConsoleFiles.Any(allowed => f.StartsWith(allowed + ":", StringComparison.Ordinal)))
            .ToList();
        Assert.True(found.Count == 0, $"{found.Count} console writes outside VerbBase.Results, ConsoleSink, ConsoleProgress and the error line " +
            "(write results with Results.WriteLine, messages with a logger):\n" + string.Join("\n", found));
        // The allowed files still exist (a rename would silently widen nothing, but should be noticed).
        Assert.All(CliConsoleFiles, f => Assert.True(File.Exists(Path.Combine(Python.RepoRoot, f)), f));
    }

    /// <summary>The scan sees each kind of breach when it is planted, and leaves the allowed shapes alone.</summary>
    [Fact]
    public void TheScanFindsPlantedBreaches()
    {
        var planted = CSharpSyntaxTree.ParseText("""
            using System;
            using Microsoft.Extensions.Logging;
            using Microsoft.Extensions.Logging.Abstractions;
            using static System.Console;
            namespace DeepLabTorch.Data;
            public static class Planted
            {
                public static ILogger Logger { get; set; } = NullLogger.Instance;
                public static ILoggerFactory? Loggers;
                public static Action<string>? OnLog { get; set; }
                private static Action<string>? _warn;
                public static void Load(string path, Action<string>? log = null)
                {
                    Console.Error.WriteLine("x");
                    System.Console.Out.Write(path);
                    WriteLine("y");
                }
            }
            public static class Allowed
            {
                private static readonly ILogger Quiet = NullLogger.Instance;
                public static ILogger Fixed { get; } = NullLogger.Instance;
                public static void Check(Action<string>? reportFailure = null, ILogger? log = null) => log?.LogInformation("{Value}", 1);
            }
            """, new CSharpParseOptions(LanguageVersion.Preview), path: "src/DeepLabTorch/Data/Planted.cs");
        var compilation = CSharpCompilation.Create("planted", [planted], HiddenScalarTests.References("DeepLabTorch.dll"),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));
        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.True(errors.Count == 0, string.Join("\n", errors));

        var shapes = LoggerShapes(compilation, "src/DeepLabTorch/").ToList();
        Assert.Contains(shapes, f => f.StartsWith("src/DeepLabTorch/Data/Planted.cs:8: static settable logger 'Logger'", StringComparison.Ordinal));
        Assert.Contains(shapes, f => f.StartsWith("src/DeepLabTorch/Data/Planted.cs:9: static settable logger 'Loggers'", StringComparison.Ordinal));
        Assert.Contains(shapes, f => f.Contains("property 'OnLog' is an Action<string> logger", StringComparison.Ordinal));
        Assert.Contains(shapes, f => f.Contains("field '_warn' is an Action<string> logger", StringComparison.Ordinal));
        Assert.Contains(shapes, f => f.StartsWith("src/DeepLabTorch/Data/Planted.cs:12: parameter 'log'", StringComparison.Ordinal));
        Assert.Equal(5, shapes.Count);

        var console = ConsoleUses(compilation, "src/DeepLabTorch/").ToList();
        Assert.Contains("src/DeepLabTorch/Data/Planted.cs:14: uses Console.Error", console);
        Assert.Contains("src/DeepLabTorch/Data/Planted.cs:15: uses Console.Out", console);
        Assert.Contains("src/DeepLabTorch/Data/Planted.cs:16: uses Console.WriteLine", console);
        Assert.Equal(3, console.Count);
    }
}
