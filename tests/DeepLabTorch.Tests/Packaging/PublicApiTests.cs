using PublicApiGenerator;
using Xunit;

namespace DeepLabTorch.Tests.Packaging;

/// <summary>
/// The public surface of DeepLabTorch.dll, as C# declarations, is the committed baseline
/// src/DeepLabTorch/PublicApi.approved.txt: a change of the surface is a visible diff in review. After an intended
/// change, run this test with DEEPLAB_ACCEPT_API=1 (it rewrites the baseline) and commit the file with the change;
/// otherwise it writes the surface it found to PublicApi.received.txt next to the baseline (ignored by git) and fails.
/// docs/packaging.md, "The public API", says what is public and why.
/// </summary>
public class PublicApiTests
{
    private static string Baseline => Path.Combine(Python.RepoRoot, "src", "DeepLabTorch", "PublicApi.approved.txt");

    internal static string CurrentSurface() =>
        typeof(DeepLabTorch.Models.DeepLabV3Plus).Assembly.GeneratePublicApi(new ApiGeneratorOptions { IncludeAssemblyAttributes = false })
            .ReplaceLineEndings("\n").TrimEnd() + "\n";

    [Fact]
    public void ThePublicApiIsTheCommittedBaseline()
    {
        var actual = CurrentSurface();
        var received = Path.ChangeExtension(Baseline, null).Replace(".approved", ".received") + ".txt";
        if (Environment.GetEnvironmentVariable("DEEPLAB_ACCEPT_API") == "1")
        {
            File.WriteAllText(Baseline, actual);
            if (File.Exists(received)) File.Delete(received);
            return;
        }
        var expected = File.Exists(Baseline) ? File.ReadAllText(Baseline).ReplaceLineEndings("\n") : "";
        if (expected == actual)
        {
            if (File.Exists(received)) File.Delete(received);
            return;
        }
        File.WriteAllText(received, actual);
        var want = expected.Split('\n').ToHashSet(StringComparer.Ordinal);
        var got = actual.Split('\n').ToHashSet(StringComparer.Ordinal);
        var lines = got.Where(l => !want.Contains(l)).Select(l => "+ " + l.Trim())
            .Concat(want.Where(l => !got.Contains(l)).Select(l => "- " + l.Trim())).Take(40);
        Assert.Fail($"the public API differs from {Baseline} (the surface found is in {received}; if the change is intended, " +
                    "rerun with DEEPLAB_ACCEPT_API=1 and commit the baseline):\n" + string.Join("\n", lines));
    }

    /// <summary>Everything public is documented: the packed XML documentation has an entry for every public type.</summary>
    [Fact]
    public void EveryPublicTypeIsInTheXmlDocumentation()
    {
        var assembly = typeof(DeepLabTorch.Models.DeepLabV3Plus).Assembly;
        var xml = Path.ChangeExtension(assembly.Location, ".xml");
        Assert.True(File.Exists(xml), $"{xml} is missing: the library builds with GenerateDocumentationFile");
        var text = File.ReadAllText(xml);
        var missing = assembly.GetExportedTypes().Where(t => !text.Contains($"\"T:{t.FullName!.Replace('+', '.')}\"", StringComparison.Ordinal)).ToList();
        Assert.True(missing.Count == 0, "public types without XML documentation: " + string.Join(", ", missing));
    }
}
