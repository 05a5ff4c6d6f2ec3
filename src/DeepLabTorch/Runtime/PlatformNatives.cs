using System.Globalization;
using System.Runtime.InteropServices;
using TorchSharp;

namespace DeepLabTorch.Runtime;

/// <summary>
/// The native libraries and kernel files that only some systems have, behind one door: POSIX <c>fsync</c> on a
/// folder, <c>/proc/self/status</c>, Open MPI's <c>libmpi</c>, NCCL and the CUDA runtime. Each call checks the system
/// with <see cref="OperatingSystem"/> and, elsewhere, falls back or says in one line what is missing. The rest of
/// the library names no such library or path (Runtime/LinuxOnlyNativesTests finds any that does), so a Windows or
/// macOS build fails here, visibly, and nowhere else.
/// </summary>
internal static class PlatformNatives
{
    /// <summary>fsync on a folder makes a rename in it durable (Linux, macOS); a no-op on Windows, whose rename is.</summary>
    public static void SyncDirectory(string dir)
    {
        if (OperatingSystem.IsWindows()) return;
        int fd = open(dir, 0 /* O_RDONLY */);
        if (fd < 0) return; // some file systems refuse opening folders; the data itself is already synced
        try { fsync(fd); } finally { close(fd); }
    }

    [DllImport("libc", SetLastError = true)] private static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);
    [DllImport("libc", SetLastError = true)] private static extern int fsync(int fd);
    [DllImport("libc", SetLastError = true)] private static extern int close(int fd);

    /// <summary>True when this process runs as root (effective user id 0) on Linux; false elsewhere.</summary>
    public static bool IsRoot() => OperatingSystem.IsLinux() && geteuid() == 0;

    /// <summary>Sends POSIX signal <paramref name="number"/> to a process (Linux, macOS); false on Windows, which has no such signals.</summary>
    public static bool Signal(int pid, int number) => !OperatingSystem.IsWindows() && kill(pid, number) == 0;

    [DllImport("libc")] private static extern uint geteuid();
    [DllImport("libc")] private static extern int kill(int pid, int signal);

    /// <summary>This process's peak resident memory (VmHWM) in MiB on Linux; -1 elsewhere.</summary>
    public static double PeakRssMb() => StatusMb("/proc/self/status", "VmHWM:");

    /// <summary>
    /// Another process's resident memory now (VmRSS of /proc/PID/status) in MiB on Linux; -1 elsewhere, or when the
    /// process is gone.
    /// </summary>
    public static double ProcessRssMb(int pid) => StatusMb($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/status", "VmRSS:");

    /// <summary>A "kB" field of a /proc status file in MiB (one decimal), or -1 off Linux or when it cannot be read.</summary>
    private static double StatusMb(string path, string field)
    {
        if (!OperatingSystem.IsLinux()) return -1;
        try
        {
            foreach (var line in File.ReadLines(path))
                if (line.StartsWith(field, StringComparison.Ordinal))
                    return Math.Round(long.Parse(line[field.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024.0, 1);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return -1;
    }

    /// <summary>The 1-, 5- and 15-minute load averages (/proc/loadavg) on Linux; null elsewhere.</summary>
    public static double[]? LoadAverage()
    {
        if (!OperatingSystem.IsLinux()) return null;
        try
        {
            var fields = File.ReadAllText("/proc/loadavg").Split(' ');
            return fields.Take(3).Select(f => double.Parse(f, CultureInfo.InvariantCulture)).ToArray();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { return null; }
    }

    /// <summary>
    /// Open MPI's libmpi (Linux: libmpi.so.40, Debian's libopenmpi3; macOS: libmpi.40.dylib), or IntPtr.Zero with the
    /// reason in <paramref name="problem"/>. MPICH (libmpi.so.12) is recognised and refused by name; on Windows, where
    /// MS-MPI would stand in for Open MPI, the reason says that only one process is supported there.
    /// </summary>
    public static IntPtr LoadOpenMpi(string installHint, out string? loadedFrom, out string? problem)
    {
        loadedFrom = problem = null;
        if (OperatingSystem.IsWindows())
        {
            problem = "MPI on Windows: DeepLabTorch binds Open MPI, not MS-MPI; train on one process (no mpirun, no --nproc) there";
            return IntPtr.Zero;
        }
        var names = OperatingSystem.IsMacOS() ? new[] { "libmpi.40.dylib", "libmpi.dylib" } : new[] { "libmpi.so.40", "libmpi.so" };
        foreach (var name in names)
            if (NativeLibrary.TryLoad(name, out var lib)) { loadedFrom = name; return lib; }
        if (NativeLibrary.TryLoad("libmpi.so.12", out var mpich))
        {
            NativeLibrary.Free(mpich);
            problem = "found MPICH (libmpi.so.12), but DeepLabTorch binds Open MPI's ABI: " + installHint;
            return IntPtr.Zero;
        }
        problem = $"MPI missing: Open MPI's {names[0]} was not found; install it with: {installHint}";
        return IntPtr.Zero;
    }

    /// <summary>NCCL (libnccl.so.2) and the CUDA runtime next to libtorch or on the library path (Linux only), or the reason they are not there.</summary>
    public static string? LoadNccl(string installHint, out IntPtr nccl, out IntPtr cudart)
    {
        nccl = cudart = IntPtr.Zero;
        if (!OperatingSystem.IsLinux()) return "NCCL: Linux only (libnccl.so.2); use one GPU per machine elsewhere";
        foreach (var name in new[] { "libnccl.so.2", "libnccl.so" })
            if (NativeLibrary.TryLoad(name, out nccl)) break;
        if (nccl == IntPtr.Zero) return $"NCCL missing: libnccl.so.2 was not found; {installHint}";
        foreach (var name in new[] { "libcudart.so.12", "libcudart.so.13", "libcudart.so.11.0", "libcudart.so" })
            if (NativeLibrary.TryLoad(name, out cudart) || NativeLibrary.TryLoad(name, typeof(torch).Assembly, null, out cudart)) break;
        return cudart == IntPtr.Zero ? "the CUDA runtime (libcudart.so) was not found next to libtorch or on the library path" : null;
    }
}
