using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Xunit;

namespace DeepLabTorch.Tests.Runtime;

/// <summary>
/// The folders of src/DeepLabTorch depend one way (docs/architecture.md): a file may use what is declared in its
/// own folder or in a folder below it, never above. The sources are compiled with Roslyn and every name that binds
/// to a type or member declared in our sources is checked against the order.
/// </summary>
public class LayeringTests
{
    /// <summary>Bottom to top. "" is the project's root folder (UserException).</summary>
    public static readonly string[] Order =
    [
        "", "Extensions", "Runtime", "Checkpoints", "Data", "Models", "Distributed", "Config",
        "Inference", "Evaluation", "Reporting", "Training", "Export", "Serving",
    ];

    private static string Folder(string relativePath)
    {
        // src/DeepLabTorch/Folder/.../File.cs
        var parts = relativePath.Replace('\\', '/').Split('/');
        return parts.Length > 3 ? parts[2] : "";
    }

    /// <summary>Every use of a declaration that sits above the using file's folder: "file:line: Folder uses Type (Other)".</summary>
    internal static IEnumerable<string> Violations(CSharpCompilation compilation)
    {
        foreach (var tree in compilation.SyntaxTrees)
        {
            var from = Folder(tree.FilePath);
            int rank = Array.IndexOf(Order, from);
            var path = tree.FilePath.Replace('\\', '/');
            // Our sources only: generated code (obj/) is placed by its namespace when it is used, not scanned.
            if (!path.StartsWith("src/DeepLabTorch/", StringComparison.Ordinal) || path.Contains("/obj/", StringComparison.Ordinal)) continue;
            var model = compilation.GetSemanticModel(tree);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var node in tree.GetRoot().DescendantNodes().OfType<SimpleNameSyntax>())
            {
                var symbol = model.GetSymbolInfo(node).Symbol ?? model.GetSymbolInfo(node).CandidateSymbols.FirstOrDefault();
                if (symbol is null or INamespaceSymbol) continue;
                var declared = symbol is IMethodSymbol { ReducedFrom: { } r } ? r : symbol;
                var location = declared.OriginalDefinition.Locations.FirstOrDefault(l => l.IsInSource);
                if (location?.SourceTree is not { } target) continue;
                // Generated code (protoc's, under obj/) belongs to the folder its namespace names.
                var to = target.FilePath.Replace('\\', '/').Contains("/obj/", StringComparison.Ordinal)
                    ? declared.ContainingNamespace.ToDisplayString().Split('.') is ["DeepLabTorch", var f, ..] ? f : ""
                    : Folder(target.FilePath);
                if (to == from) continue;
                int targetRank = Array.IndexOf(Order, to);
                if (rank >= 0 && targetRank >= 0 && targetRank <= rank) continue;
                var name = (declared.ContainingType ?? declared).ToDisplayString();
                var line = node.GetLocation().GetLineSpan().StartLinePosition.Line + 1;
                var finding = rank < 0 || targetRank < 0
                    ? $"{tree.FilePath}:{line}: folder '{(rank < 0 ? from : to)}' is not in the layer order"
                    : $"{tree.FilePath}:{line}: {(from == "" ? "(root)" : from)} uses {name} ({to}), which sits above it";
                if (seen.Add(finding)) yield return finding;
            }
        }
    }

    [Fact]
    public void EveryFolderDependsOnlyOnFoldersBelowIt()
    {
        var compilation = HiddenScalarTests.Compile("src/DeepLabTorch");
        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).Take(5).ToList();
        Assert.True(errors.Count == 0, "the sources do not compile for the scan:\n" + string.Join("\n", errors));
        var found = Violations(compilation).ToList();
        Assert.True(found.Count == 0, $"{found.Count} references against the layer order (docs/architecture.md):\n" + string.Join("\n", found));
        // Every folder of the project that holds C# has its place (buildTransitive/ holds the package's MSBuild targets).
        var folders = Directory.GetDirectories(Path.Combine(Python.RepoRoot, "src", "DeepLabTorch"))
            .Where(d => Directory.EnumerateFiles(d, "*.cs", SearchOption.AllDirectories).Any())
            .Select(Path.GetFileName).Where(n => n is not ("bin" or "obj")).ToList();
        Assert.All(folders, f => Assert.Contains(f, Order));
    }

    /// <summary>The scan sees a planted upward reference, through a type, a static member and an extension method.</summary>
    [Fact]
    public void TheScanFindsAPlantedUpwardReference()
    {
        var low = CSharpSyntaxTree.ParseText("""
            namespace DeepLabTorch.Data;
            static class Low
            {
                static int Use() => DeepLabTorch.Training.High.Value + new DeepLabTorch.Training.HighType().Get() + 3.Twice();
            }
            """, path: "src/DeepLabTorch/Data/Low.cs");
        var high = CSharpSyntaxTree.ParseText("""
            namespace DeepLabTorch.Training;
            public static class High { public const int Value = 1; public static int Twice(this int x) => 2 * x; }
            public sealed class HighType { public int Get() => 2; }
            public static class UsesLow { public static int Fine() => 1; }
            """, path: "src/DeepLabTorch/Training/High.cs");
        var ok = CSharpSyntaxTree.ParseText("""
            using DeepLabTorch.Training;
            namespace DeepLabTorch.Training.More;
            static class Same { static int Use() => High.Value; }
            """, path: "src/DeepLabTorch/Training/More/Same.cs");
        var compilation = CSharpCompilation.Create("planted", [low, high, ok],
            [MetadataReference.CreateFromFile(typeof(object).Assembly.Location)],
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        var found = Violations(compilation).ToList();
        Assert.Contains(found, f => f.StartsWith("src/DeepLabTorch/Data/Low.cs:4: Data uses DeepLabTorch.Training.High (Training)", StringComparison.Ordinal));
        Assert.Contains(found, f => f.Contains("uses DeepLabTorch.Training.HighType (Training)", StringComparison.Ordinal));
        Assert.DoesNotContain(found, f => f.Contains("Same.cs", StringComparison.Ordinal));
    }
}
