using System.Reflection;
using System.Runtime.InteropServices;
using DeepLabTorch.Extensions;
using TorchSharp;

namespace DeepLabTorch.Runtime;

/// <summary>
/// Loads TorchSharp's native library before TorchSharp does, so that a failure gets our message
/// (with the Debian 12 GLIBCXX hint) instead of TorchSharp's "package not restored", and so that
/// TorchSharp's fallback, which copies ~500 MB of natives from the NuGet cache into the app folder,
/// never runs.
/// </summary>
internal static class TorchRuntime
{
    private static readonly object Gate = new();
    private static string? _failure;
    private static bool _loaded;

    /// <summary>
    /// Runs once per process when this assembly is first used. It reports nothing itself (a module initialiser
    /// has no logger, and the library writes nothing to the console): a load failure is thrown again by
    /// EnsureLoaded, a failure of the kernel guard's early step by KernelGuard.Ensure, each to a caller that can tell the user.
    /// </summary>
    internal static void Preload()
    {
        try
        {
            EnsureLoaded();
            // Before any model runs: the one CPU fault known to date (KernelGuard).
            KernelGuard.PrepareAtLoad();
        }
        catch (TorchLoadException)
        {
            // Point TorchSharp's fallback at an empty package folder: it then fails fast with
            // nothing copied, and EnsureLoaded reports the real reason.
            Environment.SetEnvironmentVariable("NUGET_PACKAGES", Path.Combine(Path.GetTempPath(), "deeplabtorch-no-fallback"));
        }
    }

    /// <summary>Loads libLibTorchSharp (and with it libtorch). Throws TorchLoadException with the loader's reason.</summary>
    public static void EnsureLoaded()
    {
        lock (Gate)
        {
            if (_loaded) return;
            if (_failure is not null) throw new TorchLoadException(_failure);
            try
            {
                NativeLibrary.Load("LibTorchSharp", typeof(torch).Assembly, null);
                _loaded = true;
            }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                _failure = Explain(e.Message);
                throw new TorchLoadException(_failure);
            }
        }
    }

    private static string Explain(string loaderMessage)
    {
        var hint = loaderMessage.Contains("GLIBCXX", StringComparison.Ordinal)
            ? " The system's libstdc++ is older than the one libLibTorchSharp.so was built against; the build marks that "
              + $"requirement weak (tools/ElfFix). Rebuild with scripts/bootstrap.sh, or run `dotnet tools/ElfFix/bin/Release/net10.0/elffix.dll` on the output folder."
            : $" Check that the build restored TorchSharp and libtorch-cpu-{RuntimeInformation.RuntimeIdentifier} (scripts/bootstrap.sh in a clone; "
              + "the DeepLabTorch package brings linux-x64, win-x64 and osx-arm64).";
        return "TorchSharp's native library (LibTorchSharp) did not load: " + loaderMessage.Trim() + "." + hint;
    }

    public static string TorchSharpVersion =>
        typeof(torch).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
        ?? typeof(torch).Assembly.GetName().Version?.ToString() ?? "unknown";

    /// <summary>libtorch's version as TorchSharp reports it (for example 2.10.0).</summary>
    public static string LibTorchVersion
    {
        get
        {
            EnsureLoaded();
            var v = torch.__version__;
            return v.EndsWith(".0", StringComparison.Ordinal) && v.Count(c => c == '.') == 3 ? v[..^2] : v;
        }
    }

    /// <summary>The loaded copy of libLibTorchSharp.so, and whether its GLIBCXX_3.4.32 need is weak (null: no such need).</summary>
    public static (string? Path, bool? Weak) ElfFixStatus()
    {
        var dir = Path.GetDirectoryName(typeof(torch).Assembly.Location) ?? AppContext.BaseDirectory;
        foreach (var candidate in new[]
                 {
                     Path.Combine(dir, ElfVersionNeeds.TorchSharpLibrary),
                     Path.Combine(dir, "runtimes", "linux-x64", "native", ElfVersionNeeds.TorchSharpLibrary),
                 })
            if (File.Exists(candidate)) return (candidate, ElfVersionNeeds.IsWeak(candidate));
        return (null, null);
    }
}

/// <summary>TorchSharp's native library could not be loaded; the message says why and what to do.</summary>
internal sealed class TorchLoadException(string message) : Exception(message);
