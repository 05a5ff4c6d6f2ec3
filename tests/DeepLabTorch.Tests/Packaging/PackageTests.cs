using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using DeepLabTorch.Runtime;
using Xunit;
using Xunit.Abstractions;

namespace DeepLabTorch.Tests.Packaging;

/// <summary>
/// The two doors of issue #26, walked as a user walks them, in a temporary folder outside the repository:
/// the sources are copied there as a clone would have them, <c>dotnet pack</c> makes both packages, a fresh
/// console project takes DeepLabTorch from that folder and compiles the README's "Use it from your program"
/// snippet as it stands in README.md, and <c>dotnet tool install --tool-path</c> installs <c>deeplab</c>, which
/// prints <c>info</c> and trains one iteration on a tiny synthetic set. The snippet then segments one of that
/// set's images with the checkpoint the tool wrote. About two minutes on two cores, most of it compressing
/// libtorch into the tool package: the tool is packed for this machine's runtime identifier only (the
/// release packs linux-x64, win-x64 and osx-arm64). Each run packs a version of its own (0.1.0-ciSTAMP) and
/// deletes it from NuGet's global package folder afterwards, so no stale package is ever restored.
/// </summary>
public partial class PackageTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _root = Python.NewTempDir("pack");
    private readonly string _suffix = "ci" + DateTime.UtcNow.ToString("yyyyMMddHHmmss", System.Globalization.CultureInfo.InvariantCulture) + Environment.ProcessId;
    private string Feed => Path.Combine(_root, "feed");

    [GeneratedRegex(@"^## Use it from your program\n(?:(?!\n## ).)*?```csharp\n(.*?)```", RegexOptions.Singleline | RegexOptions.Multiline)]
    private static partial Regex SnippetSection();

    /// <summary>The README's snippet, as it stands there (the first C# block of its "Use it from your program" section).</summary>
    internal static string ReadmeSnippet()
    {
        var readme = File.ReadAllText(Path.Combine(Python.RepoRoot, "README.md")).ReplaceLineEndings("\n");
        var match = SnippetSection().Match(readme);
        Assert.True(match.Success, "README.md has no C# block in a section '## Use it from your program'");
        return match.Groups[1].Value;
    }

    [Fact]
    public void PackagesInstallAndRunFromAFolderOutsideTheRepository()
    {
        var rid = RuntimeInformation.RuntimeIdentifier;
        var version = Pack(rid);

        // The tool: installed from the folder, run from a folder of its own.
        var tools = Path.Combine(_root, "tools");
        Dotnet(_root, "tool", "install", "--tool-path", tools, "--add-source", Feed, "--version", version, "DeepLabTorch.Cli");
        var deeplab = Path.Combine(tools, OperatingSystem.IsWindows() ? "deeplab.exe" : "deeplab");
        var work = Directory.CreateDirectory(Path.Combine(_root, "work")).FullName;
        var info = Run(deeplab, work, "info");
        Assert.Contains("libtorch 2.10.0", info);
        if (OperatingSystem.IsLinux()) Assert.Contains("GLIBCXX load fix: applied", info);
        Run(deeplab, work, "data", "synth", "--out", "syn", "--count", "4", "--seed", "1");
        Run(deeplab, work, "train", "--dataset", "synthetic", "--data-root", "syn", "--backbone", "mobilenet", "--crop-size", "65",
            "--base-size", "64", "--batch-size", "2", "--epochs", "1", "--max-iters", "1", "--no-val", "--workers", "1", "--threads", "2",
            "--output", "run");
        var checkpoint = Path.Combine(work, "run", "last.safetensors");
        Assert.True(File.Exists(checkpoint), "the tool's training wrote no last.safetensors");

        // The library: a fresh console project with the package from the folder and the README's snippet.
        var app = Directory.CreateDirectory(Path.Combine(_root, "app")).FullName;
        Dotnet(app, "new", "console", "--name", "SegmentOne", "--output", ".");
        Dotnet(app, "add", "package", "DeepLabTorch", "--version", version, "--source", Feed);
        File.WriteAllText(Path.Combine(app, "Program.cs"), ReadmeSnippet());
        Dotnet(app, "build", "-c", "Release", "--disable-build-servers", "-o", "out");
        var bin = Path.Combine(app, "out");
        // One platform's libtorch in a build without -r (buildTransitive/DeepLabTorch.targets), fixed for Debian 12.
        var copied = Directory.GetDirectories(Path.Combine(bin, "runtimes")).Select(d => Path.GetFileName(d)!).ToList();
        Assert.Contains(rid, copied);
        Assert.All(copied, r => Assert.Contains(r, new[] { rid, rid.Split('-')[0], "unix", "any" }));
        if (OperatingSystem.IsLinux())
        {
            var needs = ElfVersionNeeds.Read(File.ReadAllBytes(Path.Combine(bin, "runtimes", rid, "native", ElfVersionNeeds.TorchSharpLibrary)));
            Assert.All(needs.Where(n => n.Version == ElfVersionNeeds.GlibcxxVersion), n => Assert.True(n.IsWeak, "the consumer's libLibTorchSharp.so was not fixed"));
        }
        var image = Directory.GetFiles(Path.Combine(work, "syn"), "*.jpg", SearchOption.AllDirectories).Order(StringComparer.Ordinal).First();
        var printed = Run("dotnet", work, Path.Combine(bin, "SegmentOne.dll"), checkpoint, image);
        Assert.Contains("background:", printed);
        var mask = DeepLabTorch.Data.ImageCodec.DecodeMask(Path.ChangeExtension(image, ".mask.png"));
        var photo = DeepLabTorch.Data.ImageCodec.DecodeImage(image);
        Assert.Equal((photo.Height, photo.Width), (mask.Height, mask.Width));
        Assert.All(mask.Indices, c => Assert.InRange(c, 0, 20));
    }

    /// <summary>
    /// Which libtorch packages the library references, as MSBuild evaluates the project (nothing is restored): the
    /// three CPU ones by default (the package's dependencies), CUDA's for the OS of the runtime identifier with
    /// -p:TorchBackend=cuda.
    /// </summary>
    [Theory]
    [InlineData("", "libtorch-cpu-linux-x64 libtorch-cpu-osx-arm64 libtorch-cpu-win-x64")]
    [InlineData("-p:TorchBackend=cuda -p:RuntimeIdentifier=linux-x64", "libtorch-cuda-12.8-linux-x64")]
    [InlineData("-p:TorchBackend=cuda -p:RuntimeIdentifier=win-x64", "libtorch-cuda-12.8-win-x64")]
    public void TheBackendSelectsTheLibtorchPackages(string properties, string expected)
    {
        var args = new[] { "msbuild", Path.Combine(Python.RepoRoot, "src", "DeepLabTorch", "DeepLabTorch.csproj"), "-getItem:PackageReference" }
            .Concat(properties.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToArray();
        var json = System.Text.Json.JsonDocument.Parse(Dotnet(_root, args));
        var libtorch = json.RootElement.GetProperty("Items").GetProperty("PackageReference").EnumerateArray()
            .Select(i => i.GetProperty("Identity").GetString()!).Where(id => id.StartsWith("libtorch", StringComparison.Ordinal)).Order(StringComparer.Ordinal);
        Assert.Equal(expected, string.Join(" ", libtorch));
    }

    /// <summary>Copies the sources as a clone has them and packs both packages into the feed; returns their version.</summary>
    private string Pack(string rid)
    {
        var clone = Path.Combine(_root, "clone");
        foreach (var file in new[] { "Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props", "global.json", "README.md" })
            File.Copy(Path.Combine(Python.RepoRoot, file), Path.Combine(clone, file).CreateParent());
        foreach (var dir in new[] { "src", "tools" })
            CopySources(Path.Combine(Python.RepoRoot, dir), Path.Combine(clone, dir));
        Dotnet(clone, "pack", "src/DeepLabTorch", "-c", "Release", "-o", Feed, $"-p:VersionSuffix={_suffix}", "--disable-build-servers");
        Dotnet(clone, "pack", "src/DeepLabTorch.Cli", "-c", "Release", "-o", Feed, $"-p:VersionSuffix={_suffix}", $"-p:RuntimeIdentifiers={rid}", "--disable-build-servers");
        var packages = Directory.GetFiles(Feed).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        output.WriteLine("packed: " + string.Join(", ", packages));
        var library = packages.Single(p => p!.StartsWith("DeepLabTorch.0", StringComparison.Ordinal) && p.EndsWith(".nupkg", StringComparison.Ordinal))!;
        var version = library["DeepLabTorch.".Length..^".nupkg".Length];
        // One version for all (Directory.Build.props), a symbols package, the tool and its platform package.
        Assert.EndsWith("-" + _suffix, version);
        Assert.Contains($"DeepLabTorch.{version}.snupkg", packages);
        Assert.Contains($"DeepLabTorch.Cli.{version}.nupkg", packages);
        Assert.Contains($"DeepLabTorch.Cli.{rid}.{version}.nupkg", packages);
        return version;
    }

    private static void CopySources(string from, string to)
    {
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(from, file);
            var parts = rel.Split(Path.DirectorySeparatorChar);
            if (parts.Any(p => p is "bin" or "obj")) continue;
            File.Copy(file, Path.Combine(to, rel).CreateParent());
        }
    }

    private string Dotnet(string dir, params string[] args) => Run("dotnet", dir, args);

    private string Run(string exe, string dir, params string[] args)
    {
        var started = DateTime.UtcNow;
        var text = Python.RunProcess(exe, args, timeoutSeconds: 300, ompThreads: null, workingDirectory: dir);
        output.WriteLine($"{(DateTime.UtcNow - started).TotalSeconds:F1} s: {Path.GetFileName(exe)} {string.Join(" ", args)}");
        return text;
    }

    public void Dispose()
    {
        try { Directory.Delete(_root, true); } catch (IOException) { }
        // This run's packages, extracted into NuGet's global folder by the console project's restore.
        var global = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                     ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        foreach (var id in new[] { "deeplabtorch", "deeplabtorch.cli" })
            foreach (var dir in Directory.Exists(Path.Combine(global, id)) ? Directory.GetDirectories(Path.Combine(global, id), "*" + _suffix) : [])
                try { Directory.Delete(dir, true); } catch (IOException) { }
        GC.SuppressFinalize(this);
    }
}

internal static class PathExtensions
{
    /// <summary>Creates the folder that will hold this file path, and returns the path.</summary>
    public static string CreateParent(this string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        return path;
    }
}
