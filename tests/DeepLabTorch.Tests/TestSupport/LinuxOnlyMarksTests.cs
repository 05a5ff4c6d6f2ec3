using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Xunit;

namespace DeepLabTorch.Tests;

/// <summary>
/// A test that reaches a tool only this Debian setup has (Debian's /usr/bin/python3 with python3-torch, ffmpeg,
/// bash scripts, script(1), kill(1), /proc) is [LinuxFact]/[LinuxTheory] and skips elsewhere, saying why. The
/// test sources are parsed with Roslyn (syntax only, no symbols), and a method with a plain [Fact] or [Theory]
/// is a finding when any of these uses one of <see cref="Helpers"/> (by name), starts such a process by its
/// literal name (new ProcessStartInfo("ffmpeg"), Process.Start("kill", ...), Python.RunProcess("bash", ...)) or
/// gives a /proc or /sys path to File, Directory or Path (or new FileInfo, DirectoryInfo, FileStream, StreamReader):
/// <list type="bullet">
/// <item>its own body and attributes (MemberData's nameof included);</item>
/// <item>the members of its own class that these name, unqualified or through this., followed within the class, and the
/// members of its class fixtures that they name on any receiver (a lazy _goldens.Get(...));</item>
/// <item>its class's constructors, field and property initializers and Dispose, and those of its IClassFixture&lt;T&gt;.</item>
/// </list>
/// What it cannot see: a helper of another class that is not in the list (a new helper that runs python must be
/// added to it), a collection fixture, calls through delegates or interfaces, and the CLI run as a child
/// process doing something Linux-only itself. Names are matched as written, so a helper of the same name in
/// another class counts too (then the test is marked, or the name made distinct). Tests with any other
/// attribute deriving from Fact/Theory (LinuxFact, MpiFact, CudaFact, ...) skip by their own logic and are not looked at.
/// </summary>
public class LinuxOnlyMarksTests
{
    /// <summary>A Linux-only helper: Owner.Member, or Member in Owner or under `using static ...Owner`; Instance: on any receiver; MaxArgs: only calls with at most that many arguments count.</summary>
    internal sealed record Helper(string Owner, string Member, string Reason, bool Instance = false, int? MaxArgs = null);

    /// <summary>The test helpers (and library entry points) known to run a Linux-only tool.</summary>
    internal static readonly Helper[] Helpers =
    [
        new("Python", "Exe", LinuxOnly.Python),
        new("Python", "Run", LinuxOnly.Python),
        new("ReferenceScripts", "Run", LinuxOnly.Python),
        new("ReferenceGolden", "Generate", LinuxOnly.Python),
        new("ReferenceGolden", "GenerateFrom", LinuxOnly.Python),
        new("ReferenceGolden", "RunPython", LinuxOnly.Python),
        new("DataTestUtil", "Python", LinuxOnly.Python),
        new("DataTestUtil", "ImageFixtures", LinuxOnly.Python),
        new("DataTestUtil", "MatFixtures", LinuxOnly.Python),
        new("InferenceTestUtil", "Python", LinuxOnly.Python),
        new("InferenceTestUtil", "PythonCode", LinuxOnly.Python),
        new("PngTestFiles", "Fixtures", LinuxOnly.Python),
        new("VideoTests", "MakeTestVideo", LinuxOnly.Ffmpeg),
        new("VideoTests", "Describe", LinuxOnly.Ffmpeg),
        new("Ffmpeg", "RunToEnd", LinuxOnly.Ffmpeg),
        // With a search path of their own (the second argument) they look only there: a test of "not installed".
        new("Ffmpeg", "Find", LinuxOnly.Ffmpeg, MaxArgs: 1),
        new("Ffmpeg", "Probe", LinuxOnly.Ffmpeg, MaxArgs: 1),
        new("VideoMatting", "Run", LinuxOnly.Ffmpeg),
        new("VideoWriter", "Open", LinuxOnly.Ffmpeg),
        new("CliRunner", "RunInTerminal", LinuxOnly.Terminal),
        new("ServerProcess", "Terminate", LinuxOnly.Signals, Instance: true),
    ];

    /// <summary>Processes started by their literal name, and why that is Linux-only here.</summary>
    private static readonly Dictionary<string, string> Programs = new(StringComparer.Ordinal)
    {
        ["/usr/bin/python3"] = LinuxOnly.Python, ["python3"] = LinuxOnly.Python,
        ["ffmpeg"] = LinuxOnly.Ffmpeg, ["ffprobe"] = LinuxOnly.Ffmpeg,
        ["bash"] = LinuxOnly.Bash, ["sh"] = LinuxOnly.Bash,
        ["script"] = LinuxOnly.Terminal, ["kill"] = LinuxOnly.Signals,
        ["mpirun"] = "runs Open MPI's mpirun ([MpiFact])",
    };

    private static readonly HashSet<string> PlainTestAttributes = new(StringComparer.Ordinal)
        { "Fact", "Theory", "FactAttribute", "TheoryAttribute", "Xunit.Fact", "Xunit.Theory", "Xunit.FactAttribute", "Xunit.TheoryAttribute" };

    private static string TypeKey(TypeDeclarationSyntax t)
    {
        var names = t.AncestorsAndSelf().Select(a => a switch
        {
            BaseNamespaceDeclarationSyntax n => n.Name.ToString(),
            TypeDeclarationSyntax d => d.Identifier.ValueText,
            _ => null,
        }).Where(n => n is not null).Reverse();
        return string.Join(".", names);
    }

    /// <summary>The nodes of a member that run when it is used: a method's attributes and body, a property's accessors and initializer, a field's initializer.</summary>
    private static IEnumerable<SyntaxNode> Parts(MemberDeclarationSyntax m) => m switch
    {
        BaseMethodDeclarationSyntax b => b.AttributeLists.Cast<SyntaxNode>().Concat(new SyntaxNode?[] { b.Body, b.ExpressionBody }.OfType<SyntaxNode>()),
        BasePropertyDeclarationSyntax p => new SyntaxNode?[] { p.AccessorList, (p as PropertyDeclarationSyntax)?.ExpressionBody, (p as PropertyDeclarationSyntax)?.Initializer,
            (p as IndexerDeclarationSyntax)?.ExpressionBody }.OfType<SyntaxNode>(),
        BaseFieldDeclarationSyntax f => [f.Declaration],
        _ => [],
    };

    private static string? MemberName(MemberDeclarationSyntax m) => m switch
    {
        MethodDeclarationSyntax x => x.Identifier.ValueText,
        PropertyDeclarationSyntax x => x.Identifier.ValueText,
        _ => null,
    };

    /// <summary>(reason, what) for each direct Linux-only use in these nodes (descendants included).</summary>
    private static IEnumerable<(string Reason, string What)> Direct(SyntaxNode node)
    {
        foreach (var n in node.DescendantNodesAndSelf())
        {
            switch (n)
            {
                case MemberAccessExpressionSyntax { Name.Identifier.ValueText: var member } access:
                {
                    var owner = access.Expression switch
                    {
                        SimpleNameSyntax s => s.Identifier.ValueText,
                        MemberAccessExpressionSyntax m => m.Name.Identifier.ValueText,
                        AliasQualifiedNameSyntax a => a.Name.Identifier.ValueText,
                        _ => null,
                    };
                    foreach (var h in Helpers)
                        if (h.Member == member && (h.Instance || h.Owner == owner) && ArgumentsFit(h, access))
                            yield return (h.Reason, $"{owner}.{member}");
                    break;
                }
                case IdentifierNameSyntax id when id.Parent is not MemberAccessExpressionSyntax:
                {
                    var member = id.Identifier.ValueText;
                    foreach (var h in Helpers)
                        if (h.Member == member && InScopeUnqualified(id, h.Owner) && ArgumentsFit(h, id))
                            yield return (h.Reason, $"{member} ({h.Owner})");
                    break;
                }
                case LiteralExpressionSyntax lit when lit.IsKind(SyntaxKind.StringLiteralExpression):
                {
                    var text = lit.Token.ValueText;
                    if ((text == "/proc" || text.StartsWith("/proc/", StringComparison.Ordinal) || text.StartsWith("/sys/", StringComparison.Ordinal)) && IsAFileSystemPath(lit))
                        yield return ("reads " + text, $"\"{text}\"");
                    else if (Programs.TryGetValue(text, out var why) && IsProgramOfAProcessStart(lit))
                        yield return (why, $"starts \"{text}\"");
                    break;
                }
            }
        }
    }

    private static bool ArgumentsFit(Helper h, ExpressionSyntax used) =>
        h.MaxArgs is not int max || used.Parent is not InvocationExpressionSyntax call || call.ArgumentList.Arguments.Count <= max;

    /// <summary>An unqualified name inside the helper's own class, or in a file with `using static ...Owner;`.</summary>
    private static bool InScopeUnqualified(SyntaxNode node, string owner) =>
        node.Ancestors().OfType<TypeDeclarationSyntax>().Any(t => t.Identifier.ValueText == owner)
        || node.SyntaxTree.GetCompilationUnitRoot().Usings.Concat(node.Ancestors().OfType<BaseNamespaceDeclarationSyntax>().SelectMany(n => n.Usings))
            .Any(u => u.StaticKeyword != default && u.Name is { } n && (n.ToString() == owner || n.ToString().EndsWith("." + owner, StringComparison.Ordinal)));

    /// <summary>An argument of File.*, Directory.*, Path.* or new FileInfo/DirectoryInfo/FileStream/StreamReader (not a message, not a string test).</summary>
    private static bool IsAFileSystemPath(LiteralExpressionSyntax lit) =>
        lit.Parent is ArgumentSyntax { Parent: ArgumentListSyntax { Parent: var call } } && call switch
        {
            InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax { Expression: var target } } =>
                target.ToString().Split('.').Last() is "File" or "Directory" or "Path",
            ObjectCreationExpressionSyntax o => o.Type.ToString().Split('.').Last() is "FileInfo" or "DirectoryInfo" or "FileStream" or "StreamReader",
            _ => false,
        };

    /// <summary>The first argument of new ProcessStartInfo(...), Process.Start(...) or Python.RunProcess(...).</summary>
    private static bool IsProgramOfAProcessStart(LiteralExpressionSyntax lit)
    {
        if (lit.Parent is not ArgumentSyntax { Parent: ArgumentListSyntax args } arg || args.Arguments[0] != arg) return false;
        return args.Parent switch
        {
            BaseObjectCreationExpressionSyntax o => (o as ObjectCreationExpressionSyntax)?.Type.ToString().EndsWith("ProcessStartInfo", StringComparison.Ordinal) ?? false,
            InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax m } => m.ToString().EndsWith("Process.Start", StringComparison.Ordinal)
                || m.ToString().EndsWith("RunProcess", StringComparison.Ordinal),
            _ => false,
        };
    }

    /// <summary>"file:line Class.Method: reason (via what)" for each plain [Fact]/[Theory] that reaches a Linux-only helper.</summary>
    internal static IEnumerable<string> Findings(IReadOnlyList<SyntaxTree> trees)
    {
        var types = trees.SelectMany(t => t.GetRoot().DescendantNodes().OfType<TypeDeclarationSyntax>()).ToList();
        var byKey = types.ToLookup(TypeKey);
        var bySimpleName = types.ToLookup(t => t.Identifier.ValueText);

        // The class fixtures of a test class (IClassFixture<T>, T found by its simple name).
        List<string> Fixtures(string typeKey) => byKey[typeKey].SelectMany(t => t.BaseList?.Types ?? default).Select(b => b.Type).OfType<GenericNameSyntax>()
            .Where(g => g.Identifier.ValueText == "IClassFixture" && g.TypeArgumentList.Arguments.Count == 1)
            .Select(g => g.TypeArgumentList.Arguments[0] is QualifiedNameSyntax q ? q.Right.Identifier.ValueText : g.TypeArgumentList.Arguments[0].ToString())
            .SelectMany(simple => bySimpleName[simple].Select(TypeKey)).Distinct().ToList();

        // The Linux-only uses reachable from these nodes through the class's own members (all partial parts; named
        // unqualified or through this.) and its fixtures' members (named on any receiver, as in _fixture.Get(...)).
        List<(string Reason, string What)> Reach(string typeKey, IEnumerable<SyntaxNode> start, IReadOnlyList<string> fixtures)
        {
            var own = byKey[typeKey].SelectMany(t => t.Members).ToList();
            var fixtureMembers = fixtures.SelectMany(f => byKey[f]).SelectMany(t => t.Members).ToList();
            var seen = new HashSet<SyntaxNode>();
            var queue = new Queue<SyntaxNode>(start);
            var found = new List<(string, string)>();
            while (queue.Count > 0)
            {
                var node = queue.Dequeue();
                if (!seen.Add(node)) continue;
                found.AddRange(Direct(node));
                var unqualified = new HashSet<string>(StringComparer.Ordinal);
                var accessed = new HashSet<string>(StringComparer.Ordinal);
                foreach (var id in node.DescendantNodesAndSelf().OfType<IdentifierNameSyntax>())
                    if (id.Parent is not MemberAccessExpressionSyntax { Name: var name } m || name != id || m.Expression is ThisExpressionSyntax) unqualified.Add(id.Identifier.ValueText);
                    else accessed.Add(id.Identifier.ValueText);
                foreach (var (m, names) in own.Select(m => (m, unqualified)).Concat(fixtureMembers.Select(m => (m, accessed.Concat(unqualified).ToHashSet(StringComparer.Ordinal)))))
                {
                    var isNamed = MemberName(m) is { } mn ? names.Contains(mn)
                        : m is BaseFieldDeclarationSyntax f && f.Declaration.Variables.Any(v => names.Contains(v.Identifier.ValueText));
                    if (isNamed) foreach (var p in Parts(m)) queue.Enqueue(p);
                }
            }
            return found;
        }

        // What runs around every test of a class: its constructors, initializers and Dispose, and those of its class fixtures.
        List<(string Reason, string What)> Setup(string typeKey, IReadOnlyList<string> fixtures) =>
            Reach(typeKey, byKey[typeKey].SelectMany(t => t.Members)
                    .Where(m => m is ConstructorDeclarationSyntax { Modifiers: var mods } && !mods.Any(SyntaxKind.StaticKeyword)
                        || m is BaseFieldDeclarationSyntax || m is PropertyDeclarationSyntax { Initializer: not null }
                        || m is MethodDeclarationSyntax { Identifier.ValueText: "Dispose" or "DisposeAsync" or "InitializeAsync" })
                    .SelectMany(Parts), fixtures)
                .Select(f => (f.Reason, $"{f.What} in {typeKey.Split('.').Last()}'s set-up"))
                .Concat(fixtures.SelectMany(f => Setup(f, [])))
                .ToList();

        var setups = new Dictionary<string, List<(string Reason, string What)>>(StringComparer.Ordinal);
        foreach (var tree in trees)
            foreach (var method in tree.GetRoot().DescendantNodes().OfType<MethodDeclarationSyntax>())
            {
                if (!method.AttributeLists.SelectMany(a => a.Attributes).Any(a => PlainTestAttributes.Contains(a.Name.ToString()))) continue;
                if (method.Parent is not TypeDeclarationSyntax type) continue;
                var key = TypeKey(type);
                var fixtures = Fixtures(key);
                if (!setups.TryGetValue(key, out var setup)) setups[key] = setup = Setup(key, fixtures);
                var found = Reach(key, Parts(method), fixtures).Concat(setup).ToList();
                if (found.Count == 0) continue;
                var line = method.Identifier.GetLocation().GetLineSpan().StartLinePosition.Line + 1;
                yield return $"{tree.FilePath}:{line} {type.Identifier.ValueText}.{method.Identifier.ValueText}: {found[0].Reason} (via {string.Join(", ", found.Select(f => f.What).Distinct())})";
            }
    }

    [Fact]
    public void TestsThatReachLinuxOnlyToolsAreMarked()
    {
        var root = Path.Combine(Python.RepoRoot, "tests", "DeepLabTorch.Tests");
        var parse = new CSharpParseOptions(LanguageVersion.Preview);
        var trees = Directory.GetFiles(root, "*.cs", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(Python.RepoRoot, f).Replace('\\', '/'))
            .Where(rel => !rel.Contains("/obj/", StringComparison.Ordinal) && !rel.Contains("/bin/", StringComparison.Ordinal))
            .Select(rel => CSharpSyntaxTree.ParseText(File.ReadAllText(Path.Combine(Python.RepoRoot, rel)), parse, rel))
            .ToList();
        Assert.True(trees.Count > 50, $"only {trees.Count} test sources under {root}");
        var found = Findings(trees).ToList();
        Assert.True(found.Count == 0, $"{found.Count} tests reach a Linux-only tool without [LinuxFact(LinuxOnly.…)] / [LinuxTheory(LinuxOnly.…)]:\n" + string.Join("\n", found));
    }

    /// <summary>The scan sees each planted kind, through the class's own helpers and fixtures, and leaves marked tests and look-ups with a search path alone.</summary>
    [Fact]
    public void TheScanFindsPlantedUnmarkedTests()
    {
        const string code = """
            using System.Diagnostics;
            using Xunit;
            using static DeepLabTorch.Tests.Inference.InferenceTestUtil;
            namespace DeepLabTorch.Tests.Planted;
            public sealed class Made : IDisposable
            {
                public Made() => Python.Run("make.py", "dir");
                public void Dispose() { }
            }
            public class WithFixture(Made made) : IClassFixture<Made>
            {
                [Fact] public void Anything() { }
            }
            public class Planted
            {
                private static ReferenceGolden Golden() => ReferenceGolden.Generate("--mode", "keys");
                [Fact] public void Golden1() { using var g = Golden(); }
                [Theory, InlineData(1)] public void Pil(int n) => PythonCode("print(1)");
                [Fact] public void Video() { using var p = Process.Start("ffmpeg", "-version"); }
                [Fact] public void Sigterm() { var s = ServerProcess.Start(); s.Terminate(); }
                [Fact] public void Stat() => File.ReadAllText("/proc/self/stat");
                [Fact] public void NotInstalled() => Ffmpeg.Find("ffmpeg", "/empty");
                [Fact] public void Dotnet() { using var p = Process.Start("dotnet", "--info"); var m = "ffmpeg is missing"; }
                [LinuxFact(LinuxOnly.Python)] public void Marked() => DataTestUtil.Python("x.py");
                [MpiFact] public void Mpi() { using var p = Process.Start("mpirun"); }
            }
            public sealed class Goldens { public string Get() => ReferenceScripts.Run("x.py"); }
            public class UsesGoldens(Goldens goldens) : IClassFixture<Goldens>
            {
                [Fact] public void Later() => goldens.Get();
                [Fact] public void Never() { }
            }
            """;
        var found = Findings([CSharpSyntaxTree.ParseText(code, path: "tests/DeepLabTorch.Tests/Planted.cs")]).ToList();
        Assert.Equal(7, found.Count);
        Assert.Contains(found, f => f.StartsWith("tests/DeepLabTorch.Tests/Planted.cs:12 WithFixture.Anything: " + LinuxOnly.Python + " (via Python.Run in Made's set-up)", StringComparison.Ordinal));
        Assert.Contains(found, f => f.Contains(":17 Planted.Golden1: " + LinuxOnly.Python + " (via ReferenceGolden.Generate)", StringComparison.Ordinal));
        Assert.Contains(found, f => f.Contains(":18 Planted.Pil: " + LinuxOnly.Python + " (via PythonCode (InferenceTestUtil))", StringComparison.Ordinal));
        Assert.Contains(found, f => f.Contains(":19 Planted.Video: " + LinuxOnly.Ffmpeg + " (via starts \"ffmpeg\")", StringComparison.Ordinal));
        Assert.Contains(found, f => f.Contains(":20 Planted.Sigterm: " + LinuxOnly.Signals + " (via s.Terminate)", StringComparison.Ordinal));
        Assert.Contains(found, f => f.Contains(":21 Planted.Stat: reads /proc/self/stat", StringComparison.Ordinal));
        Assert.Contains(found, f => f.Contains(":30 UsesGoldens.Later: " + LinuxOnly.Python + " (via ReferenceScripts.Run)", StringComparison.Ordinal));
    }
}
