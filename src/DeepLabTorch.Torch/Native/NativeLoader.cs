using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DeepLabTorch.Torch.Native;

/// <summary>
/// Finds libdeeplabtorch_native without LD_LIBRARY_PATH: next to the assembly, then $DEEPLABTORCH_NATIVE
/// (a file or a folder), then build/native in any parent folder (a source checkout).
/// </summary>
public static class NativeLoader
{
    public const string LibraryName = "deeplabtorch_native";
    private static readonly object Gate = new();
    private static IntPtr _handle;
    private static readonly HashSet<Assembly> Registered = new();

    [ModuleInitializer]
    internal static void Init() => RegisterFor(typeof(NativeLoader).Assembly);

    /// <summary>Installs the resolver for an assembly that P/Invokes the native library.</summary>
    public static void RegisterFor(Assembly assembly)
    {
        lock (Gate)
        {
            if (!Registered.Add(assembly)) return;
            NativeLibrary.SetDllImportResolver(assembly, (name, _, _) => name == LibraryName ? Load() : IntPtr.Zero);
        }
    }

    public static string FileName =>
        OperatingSystem.IsWindows() ? LibraryName + ".dll" :
        OperatingSystem.IsMacOS() ? "lib" + LibraryName + ".dylib" : "lib" + LibraryName + ".so";

    public static IEnumerable<string> Candidates()
    {
        yield return Path.Combine(AppContext.BaseDirectory, FileName);
        var env = Environment.GetEnvironmentVariable("DEEPLABTORCH_NATIVE");
        if (!string.IsNullOrEmpty(env))
            yield return Directory.Exists(env) ? Path.Combine(env, FileName) : env;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            yield return Path.Combine(dir.FullName, "build", "native", FileName);
    }

    public static IntPtr Load()
    {
        lock (Gate)
        {
            if (_handle != IntPtr.Zero) return _handle;
            var tried = new List<string>();
            foreach (var path in Candidates())
            {
                if (!File.Exists(path)) { tried.Add(path + " (absent)"); continue; }
                try
                {
                    _handle = NativeLibrary.Load(path);
                    return _handle;
                }
                catch (DllNotFoundException e)
                {
                    tried.Add(path + " (" + e.Message + ")");
                }
            }
            throw new DllNotFoundException(
                $"Could not load {FileName}. Run scripts/bootstrap.sh to build it (it needs Debian's libtorch-dev). Tried:\n  " +
                string.Join("\n  ", tried));
        }
    }
}
