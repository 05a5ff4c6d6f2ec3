using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Xunit;

namespace DeepLabTorch.Tests.Runtime;

/// <summary>
/// The project's sources, compiled here with Roslyn, pass no temporary Scalar to libtorch. A C# number
/// converted implicitly to TorchSharp's Scalar (or Tensor), a Tensor operator with a number operand, and
/// <c>a + b</c> / <c>add(b)</c> / <c>add_(b)</c> (TorchSharp calls <c>add(b, 1)</c>) each make a native
/// object that nothing references during the call, which the finalizer can free while libtorch reads it
/// (see README, "TorchSharp traps"; HeldScalarSgdTests shows the failure). Each finding names the file
/// and line; use HeldScalars, a Scalar in a using declaration, or Plus/PlusInPlace.
/// </summary>
public class HiddenScalarTests
{
    private static readonly string[] Projects = ["src/DeepLabTorch", "src/DeepLabTorch.Cli"];

    internal static IEnumerable<MetadataReference> References(string excludeAssembly)
    {
        var platform = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator);
        var local = Directory.GetFiles(AppContext.BaseDirectory, "*.dll");
        return platform.Concat(local)
            .Where(p => !Path.GetFileName(p).StartsWith("DeepLabTorch.Tests", StringComparison.Ordinal))
            .Where(p => Path.GetFileName(p) != excludeAssembly && Path.GetFileName(p) != "deeplab.dll")
            .GroupBy(Path.GetFileName).Select(g => g.First())
            .Where(IsManaged)
            .Select(p => MetadataReference.CreateFromFile(p));
    }

    private static bool IsManaged(string path)
    {
        try { System.Reflection.AssemblyName.GetAssemblyName(path); return true; }
        catch (BadImageFormatException) { return false; }
    }

    internal static CSharpCompilation Compile(string project)
    {
        var dir = Path.Combine(DeepLabTorch.Tests.Python.RepoRoot, project);
        var sources = Directory.GetFiles(dir, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                        && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .ToList();
        sources.AddRange(GeneratedSources(dir));
        var parse = new CSharpParseOptions(LanguageVersion.Preview);
        var trees = sources.Select(f => CSharpSyntaxTree.ParseText(File.ReadAllText(f), parse, Path.GetRelativePath(DeepLabTorch.Tests.Python.RepoRoot, f))).ToList();
        // The SDK's implicit global usings (ImplicitUsings=enable).
        trees.Add(CSharpSyntaxTree.ParseText(string.Join("\n", new[] { "System", "System.IO", "System.Linq", "System.Collections.Generic", "System.Net.Http", "System.Threading", "System.Threading.Tasks" }
            .Select(n => $"global using global::{n};")), parse, "GlobalUsings.g.cs"));
        var self = project.EndsWith(".Cli", StringComparison.Ordinal) ? "deeplab.dll" : "DeepLabTorch.dll";
        // Named as the assembly it stands for: the library's InternalsVisibleTo("deeplab") then lets the CLI's sources see its internals.
        return CSharpCompilation.Create(Path.GetFileNameWithoutExtension(self), trees, References(self),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, allowUnsafe: true, nullableContextOptions: NullableContextOptions.Enable));
    }

    /// <summary>
    /// The C# that protoc generates at build time from the project's .proto files (Grpc.Tools' OutputDir in the
    /// .csproj: obj/protobuf/, the same for every configuration). The scan runs no generators, so it takes
    /// their output from the build; a project with .proto files and no generated code has not been built.
    /// </summary>
    private static IEnumerable<string> GeneratedSources(string projectDir)
    {
        var protos = Directory.GetFiles(projectDir, "*.proto", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                        && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .ToList();
        if (protos.Count == 0) return [];
        var generatedDir = Path.Combine(projectDir, "obj", "protobuf");
        var generated = Directory.Exists(generatedDir) ? Directory.GetFiles(generatedDir, "*.cs", SearchOption.AllDirectories) : [];
        Assert.True(generated.Length == protos.Count,
            $"{projectDir} has {protos.Count} .proto file(s) but {generatedDir} holds {generated.Length} generated .cs file(s); build the project first");
        return generated;
    }

    private static bool IsTorch(ITypeSymbol? t, string name) =>
        t is not null && t.Name == name && t.ContainingNamespace?.ToDisplayString() is "TorchSharp" or "TorchSharp.torch"
        || t?.ContainingType is { Name: "torch" } && t.Name == name;

    private static bool IsTensor(ITypeSymbol? t) => t is not null && t.Name == "Tensor" && (t.ContainingType?.Name == "torch" || t.BaseType?.Name == "Tensor" && t.BaseType.ContainingType?.Name == "torch");

    private static IEnumerable<string> Findings(CSharpCompilation compilation)
    {
        foreach (var tree in compilation.SyntaxTrees)
        {
            var model = compilation.GetSemanticModel(tree);
            foreach (var node in tree.GetRoot().DescendantNodes())
            {
                string? what = null;
                if (node is ExpressionSyntax e && model.GetConversion(e) is { IsUserDefined: true, IsImplicit: true, MethodSymbol: { } op }
                    && (IsTorch(op.ReturnType, "Scalar") || IsTensor(op.ReturnType)))
                    what = $"implicit {op.ReturnType.Name} from {model.GetTypeInfo(e).Type?.ToDisplayString() ?? "?"}";
                else if (node is BinaryExpressionSyntax or AssignmentExpressionSyntax
                         && model.GetSymbolInfo(node).Symbol is IMethodSymbol { MethodKind: MethodKind.UserDefinedOperator } bin
                         && IsTensor(bin.ContainingType)
                         && (bin.Name == "op_Addition" || bin.Parameters.Any(p => p.Type.SpecialType != SpecialType.None)))
                    what = $"Tensor operator {bin.Name} ({string.Join(", ", bin.Parameters.Select(p => p.Type.Name))})";
                else if (node is InvocationExpressionSyntax inv && model.GetSymbolInfo(inv).Symbol is IMethodSymbol m
                         && IsTensor(m.ContainingType) && m.Name is "add" or "add_" && m.Parameters.Length == 1)
                    what = $"{m.Name}({m.Parameters[0].Type.Name}) without alpha (TorchSharp adds an implicit Scalar 1)";
                if (what is null) continue;
                var line = tree.GetLineSpan(node.Span).StartLinePosition.Line + 1;
                yield return $"{tree.FilePath}:{line}: {what}: {node.ToString().Split('\n')[0].Trim()}";
            }
        }
    }

    [Fact]
    public void TheScannerFindsEachKindOfHiddenScalar()
    {
        // A planted file with one case of each kind, compiled against the same references.
        const string planted = """
            using TorchSharp;
            using static TorchSharp.torch;
            static class Planted
            {
                static void Run(Tensor a, Tensor b)
                {
                    var x = a.mul(2.0);
                    var y = a + b;
                    var z = a * 0.5;
                    a.add_(b);
                    using var held = 2.0.ToScalar();
                    var fine = a.mul(held).add(b, held);
                }
            }
            """;
        var compilation = CSharpCompilation.Create("planted", [CSharpSyntaxTree.ParseText(planted, new CSharpParseOptions(LanguageVersion.Preview), "Planted.cs")],
            References("DeepLabTorch.dll"), new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        Assert.Empty(compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        var found = Findings(compilation).ToList();
        Assert.Contains(found, f => f.Contains(":7: implicit Scalar", StringComparison.Ordinal));
        Assert.Contains(found, f => f.Contains(":8: Tensor operator op_Addition", StringComparison.Ordinal));
        Assert.Contains(found, f => f.Contains(":9: Tensor operator op_Multiply", StringComparison.Ordinal));
        Assert.Contains(found, f => f.Contains(":10: add_(Tensor)", StringComparison.Ordinal));
        Assert.DoesNotContain(found, f => f.Contains(":12:", StringComparison.Ordinal));
        Assert.Equal(4, found.Count);
    }

    [Theory]
    [InlineData("src/DeepLabTorch")]
    [InlineData("src/DeepLabTorch.Cli")]
    public void TheSourcesPassNoTemporaryScalarToLibtorch(string project)
    {
        var compilation = Compile(project);
        // The scan is only as good as the semantic model: the sources must compile here as they do in the build.
        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).Take(5).ToList();
        Assert.True(errors.Count == 0, "the sources do not compile for the scan:\n" + string.Join("\n", errors));
        var found = Findings(compilation).ToList();
        Assert.True(found.Count == 0, $"{found.Count} temporary Scalars passed to libtorch:\n" + string.Join("\n", found));
    }
}
