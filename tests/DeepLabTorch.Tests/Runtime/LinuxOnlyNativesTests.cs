using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Xunit;

namespace DeepLabTorch.Tests.Runtime;

/// <summary>
/// Everything Linux-only sits behind the one seam, src/DeepLabTorch/Runtime/ (PlatformNatives and its neighbours,
/// which check the system with OperatingSystem). The sources of the library and the CLI are parsed with Roslyn, and
/// outside that folder none may name a Linux-only native library: in [DllImport]/[LibraryImport], in a
/// NativeLibrary.Load/TryLoad call, or as a string such as "libmpi.so.40" (the C library "libc", "libdl" and any
/// "*.so" / "*.so.N" soname); nor a /proc or /sys path. TorchSharp's own "LibTorchSharp" is on every platform.
/// </summary>
public partial class LinuxOnlyNativesTests
{
    private static readonly string[] Projects = ["src/DeepLabTorch", "src/DeepLabTorch.Cli"];
    private const string Seam = "src/DeepLabTorch/Runtime/";

    [GeneratedRegex(@"^lib[\w.+-]*?\.so(\.\d+)*$")]
    private static partial Regex SharedObject();

    private static readonly HashSet<string> PosixLibraries = new(StringComparer.Ordinal) { "libc", "libdl", "libm", "libpthread", "librt" };

    private static bool LinuxOnlyLibrary(string name) => PosixLibraries.Contains(name) || SharedObject().IsMatch(name);

    private static bool LinuxOnlyPath(string text) => text.StartsWith("/proc/", StringComparison.Ordinal) || text.StartsWith("/sys/", StringComparison.Ordinal);

    /// <summary>"file:line: what" for each Linux-only name outside the seam.</summary>
    internal static IEnumerable<string> Findings(SyntaxTree tree)
    {
        var path = tree.FilePath.Replace('\\', '/');
        if (path.StartsWith(Seam, StringComparison.Ordinal)) yield break;
        foreach (var node in tree.GetRoot().DescendantNodes())
        {
            string? what = node switch
            {
                AttributeSyntax a when a.Name.ToString() is "DllImport" or "LibraryImport" or "DllImportAttribute" or "LibraryImportAttribute"
                    && a.ArgumentList?.Arguments.FirstOrDefault()?.Expression is LiteralExpressionSyntax { Token.ValueText: var lib } && LinuxOnlyLibrary(lib)
                    => $"[{a.Name}(\"{lib}\")]",
                InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax { Expression: var target, Name.Identifier.ValueText: "Load" or "TryLoad" } } call
                    when target.ToString().EndsWith("NativeLibrary", StringComparison.Ordinal)
                    && call.ArgumentList.Arguments.FirstOrDefault()?.Expression is LiteralExpressionSyntax { Token.ValueText: var lib } && LinuxOnlyLibrary(lib)
                    => $"NativeLibrary.{((MemberAccessExpressionSyntax)call.Expression).Name}(\"{lib}\")",
                LiteralExpressionSyntax lit when lit.IsKind(SyntaxKind.StringLiteralExpression) && lit.Parent is not AttributeArgumentSyntax
                    && (SharedObject().IsMatch(lit.Token.ValueText) || LinuxOnlyPath(lit.Token.ValueText))
                    && !(lit.Parent is ArgumentSyntax { Parent.Parent: InvocationExpressionSyntax inv } && inv.Expression.ToString().Contains("NativeLibrary", StringComparison.Ordinal))
                    => $"\"{lit.Token.ValueText}\"",
                _ => null,
            };
            if (what is not null)
                yield return $"{tree.FilePath}:{node.GetLocation().GetLineSpan().StartLinePosition.Line + 1}: {what}";
        }
    }

    [Fact]
    public void LinuxOnlyNativesAreNamedOnlyInTheRuntimeSeam()
    {
        var found = new List<string>();
        foreach (var project in Projects)
        {
            var dir = Path.Combine(Python.RepoRoot, project);
            foreach (var file in Directory.GetFiles(dir, "*.cs", SearchOption.AllDirectories))
            {
                var rel = Path.GetRelativePath(Python.RepoRoot, file).Replace('\\', '/');
                if (rel.Contains("/obj/", StringComparison.Ordinal) || rel.Contains("/bin/", StringComparison.Ordinal)) continue;
                found.AddRange(Findings(CSharpSyntaxTree.ParseText(File.ReadAllText(file), path: rel)));
            }
        }
        Assert.True(found.Count == 0, $"{found.Count} Linux-only natives outside {Seam} (put them behind Runtime/PlatformNatives with an OperatingSystem check):\n" + string.Join("\n", found));
    }

    /// <summary>The scan sees each planted kind, and leaves the seam, TorchSharp's library and messages alone.</summary>
    [Fact]
    public void TheScanFindsPlantedLinuxOnlyNatives()
    {
        const string code = """
            using System.Runtime.InteropServices;
            static class Planted
            {
                [DllImport("libc")] static extern int getpid();
                [DllImport("LibTorchSharp")] static extern void fine();
                static void Load()
                {
                    NativeLibrary.TryLoad("libmpi.so.40", out _);
                    var names = new[] { "libnccl.so.2" };
                    var stat = File.ReadAllText("/proc/self/stat");
                    var message = "install libopenmpi3 for libmpi.so.40";
                }
            }
            """;
        var outside = Findings(CSharpSyntaxTree.ParseText(code, path: "src/DeepLabTorch/Distributed/Planted.cs")).ToList();
        Assert.Equal(4, outside.Count);
        Assert.Contains(outside, f => f.EndsWith(":4: [DllImport(\"libc\")]", StringComparison.Ordinal));
        Assert.Contains(outside, f => f.EndsWith(":8: NativeLibrary.TryLoad(\"libmpi.so.40\")", StringComparison.Ordinal));
        Assert.Contains(outside, f => f.EndsWith(":9: \"libnccl.so.2\"", StringComparison.Ordinal));
        Assert.Contains(outside, f => f.EndsWith(":10: \"/proc/self/stat\"", StringComparison.Ordinal));
        Assert.Empty(Findings(CSharpSyntaxTree.ParseText(code, path: "src/DeepLabTorch/Runtime/Planted.cs")));
    }
}
