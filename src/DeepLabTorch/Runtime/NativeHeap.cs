using System.Runtime.InteropServices;

namespace DeepLabTorch.Runtime;

/// <summary>
/// libtorch's CPU tensors come from glibc's malloc. By default glibc gives every block of 128 KB or more
/// (the threshold adapts up to 32 MB) its own mmap and returns it to the kernel on free, so the next step's
/// activations of the same size are fresh pages again: one page fault and a page of zeroing per 4 KB. A
/// forward at 513² allocates and frees hundreds of megabytes. Keeping freed memory in the heap instead
/// (no mmap for blocks, no trimming of the heap's top) made a bf16 batch-8 forward 30% faster and a
/// float32 one 31% (scripts/bench.sh infer; docs/performance.md, "The native heap"). PyTorch users get the
/// same effect from the MALLOC_MMAP_MAX_ and MALLOC_TRIM_THRESHOLD_ environment variables or a preloaded
/// jemalloc or tcmalloc. The cost: the process keeps its peak heap until it exits.
/// </summary>
internal static class NativeHeap
{
    /// <summary>What <see cref="KeepFreedMemory"/> did, for `deeplab info` and the logs.</summary>
    public static string Status { get; private set; } = "glibc defaults (not configured)";

    /// <summary>The environment variable that leaves glibc's defaults alone: DEEPLAB_MALLOC=system.</summary>
    public const string OptOutVariable = "DEEPLAB_MALLOC";

    // glibc's mallopt parameters (malloc.h).
    private const int M_TRIM_THRESHOLD = -1;
    private const int M_MMAP_MAX = -4;

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int Mallopt(int parameter, int value);

    /// <summary>
    /// Why the process's heap should be left as it is, or null to configure it: an opt-out, the user's own
    /// MALLOC_* settings, or another allocator preloaded (their choice wins).
    /// </summary>
    public static string? ReasonToLeaveAlone(IReadOnlyDictionary<string, string?> environment, bool linux)
    {
        if (!linux) return "not Linux";
        if (environment.TryGetValue(OptOutVariable, out var choice) && !string.IsNullOrEmpty(choice))
        {
            if (string.Equals(choice, "system", StringComparison.OrdinalIgnoreCase)) return $"{OptOutVariable}=system";
            if (!string.Equals(choice, "keep", StringComparison.OrdinalIgnoreCase))
                throw new UserException($"{OptOutVariable} must be 'keep' (the default) or 'system', got '{choice}'");
        }
        var own = environment.Keys.Where(k => k.StartsWith("MALLOC_", StringComparison.Ordinal) && !string.IsNullOrEmpty(environment[k]))
            .OrderBy(k => k, StringComparer.Ordinal).ToList();
        if (own.Count > 0) return $"{string.Join(", ", own)} set in the environment";
        if (environment.TryGetValue("LD_PRELOAD", out var preload) && !string.IsNullOrWhiteSpace(preload)) return $"LD_PRELOAD={preload}";
        return null;
    }

    /// <summary>
    /// Keeps freed native memory for reuse (see the class summary), unless <see cref="ReasonToLeaveAlone"/> says
    /// otherwise. Call it once, early: the `deeplab` command does so before any verb runs.
    /// </summary>
    public static string KeepFreedMemory()
    {
        var env = Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .ToDictionary(e => (string)e.Key, e => (string?)e.Value, StringComparer.Ordinal);
        var reason = ReasonToLeaveAlone(env, OperatingSystem.IsLinux());
        if (reason is not null) return Status = $"glibc defaults ({reason})";
        try
        {
            // Blocks come from the heap, never from their own mmap, and the heap's top is never given back
            // (int.MaxValue bytes, about 2 GB, is the largest trim threshold mallopt takes).
            bool ok = Mallopt(M_MMAP_MAX, 0) == 1 & Mallopt(M_TRIM_THRESHOLD, int.MaxValue) == 1;
            return Status = ok ? "freed memory kept for reuse (mmap off, heap not trimmed)" : "glibc defaults (mallopt refused)";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return Status = "glibc defaults (no mallopt in this C library)";
        }
    }

    /// <summary>The process's minor page faults so far (minflt, the 10th field of /proc/self/stat), or null off Linux.</summary>
    public static long? MinorPageFaults()
    {
        try
        {
            var stat = File.ReadAllText("/proc/self/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return long.Parse(fields[7], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }
}
