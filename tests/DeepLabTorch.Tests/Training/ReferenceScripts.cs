namespace DeepLabTorch.Tests.Training;

/// <summary>Runs the project's own PyTorch scripts under tests/reference with Debian's python3.</summary>
internal static class ReferenceScripts
{
    public static string RepoRoot => Python.RepoRoot;

    public static string TempDir(string prefix) => Python.NewTempDir(prefix);

    /// <summary>Runs /usr/bin/python3 tests/reference/SCRIPT args...; returns stdout; throws with stderr on failure.</summary>
    public static string Run(string script, params string[] args) => Python.Run(script, args);

    public static T[] ReadRaw<T>(string path) where T : unmanaged =>
        System.Runtime.InteropServices.MemoryMarshal.Cast<byte, T>(File.ReadAllBytes(path)).ToArray();
}
