using System.Globalization;

namespace DeepLabTorch.Runtime;

/// <summary>
/// oneDNN's record of the CPU's data caches, inside libtorch_cpu.so: the <c>Xbyak::util::Cpu</c> object that
/// <c>dnnl::impl::cpu::x64::cpu()</c> returns. oneDNN sizes its convolution blocks from it
/// (<c>platform::get_per_core_cache_size</c> = size / cores sharing, or fixed guesses of 32 KiB, 512 KiB and 1 MiB
/// when it records no levels). On a virtual machine that zeroes CPUID leaf 0x8000001D, oneDNN v3.7.1 records
/// three levels of one byte each, and its brgemm convolutions then divide by zero or compute wrong values.
/// <see cref="UseGuesses"/> sets the level count to 0, which is what oneDNN v3.10 itself does on such a machine.
/// The object's layout is oneDNN v3.7's; every read checks it against CPUID first.
/// </summary>
internal sealed unsafe class OneDnnCacheTable
{
    private const string CpuFunction = "_ZN4dnnl4impl3cpu3x643cpuEv"; // dnnl::impl::cpu::x64::cpu()

    // Byte offsets in Xbyak::util::Cpu (oneDNN v3.7.x, src/cpu/x64/xbyak/xbyak_util.h): Type type_ (two
    // uint64), bool x2APIC_supported_, uint32 numCores_[2], uint32 dataCacheSize_[10],
    // uint32 coresSharignDataCache_[10], uint32 dataCacheLevels_, uint32 avx10version_, then int model,
    // family, stepping, extModel, extFamily, displayFamily, displayModel.
    private const int SizesAt = 28, SharingAt = 68, LevelsAt = 108, ModelAt = 116;
    private const int MaxLevels = 10;

    private readonly byte* _cpu;

    private OneDnnCacheTable(byte* cpu) => _cpu = cpu;

    private static readonly object Gate = new();
    private static (CpuIdentity Cpu, OneDnnCacheTable? Table, string Why)? _located;

    /// <summary>
    /// The table of the loaded libtorch, or null with the reason it cannot be used. Found once per process: the
    /// search maps libtorch_cpu.so and scans its symbol table, and the object does not move.
    /// </summary>
    public static OneDnnCacheTable? Locate(CpuIdentity cpu, out string why)
    {
        lock (Gate)
        {
            if (_located is { } known && ReferenceEquals(known.Cpu, cpu))
            {
                why = known.Why;
                return known.Table;
            }
            var table = Find(cpu, out why);
            _located = (cpu, table, why);
            return table;
        }
    }

    private static OneDnnCacheTable? Find(CpuIdentity cpu, out string why)
    {
        try
        {
            var (path, baseAddress) = LibTorchNative.LoadedLibrary();
            var offset = LibTorchNative.FindSymbol(path, CpuFunction);
            if (offset is null)
            {
                why = $"{Path.GetFileName(path)} has no symbol {CpuFunction} (a stripped or different build)";
                return null;
            }
            // Calling cpu() constructs the object if oneDNN has not yet, so nothing overwrites a later edit.
            var function = (delegate* unmanaged<byte*>)(baseAddress + (nint)offset.Value);
            var table = new OneDnnCacheTable(function());
            why = table.Mismatch(cpu) ?? "";
            return why.Length == 0 ? table : null;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or InvalidOperationException
                                      or PlatformNotSupportedException or EntryPointNotFoundException or UnauthorizedAccessException)
        {
            why = e.Message;
            return null;
        }
    }

    /// <summary>Null when the object holds what CPUID says (so the layout is the one assumed), else what differs.</summary>
    private string? Mismatch(CpuIdentity cpu)
    {
        int[] expected = [cpu.BaseModel, cpu.BaseFamily, cpu.Stepping, cpu.ExtModel, cpu.ExtFamily, cpu.Family, cpu.Model];
        for (int i = 0; i < expected.Length; i++)
        {
            int found = *(int*)(_cpu + ModelAt + 4 * i);
            if (found != expected[i])
                return string.Create(CultureInfo.InvariantCulture,
                    $"oneDNN's CPU record does not have the layout of oneDNN v3.7 (field {i}: {found}, CPUID says {expected[i]})");
        }
        return Levels > MaxLevels ? $"oneDNN's CPU record has {Levels} cache levels" : null;
    }

    /// <summary>The number of data-cache levels oneDNN recorded (0: it uses its guesses).</summary>
    public uint Levels
    {
        get => *(uint*)(_cpu + LevelsAt);
        private set => *(uint*)(_cpu + LevelsAt) = value;
    }

    /// <summary>Size in bytes and the number of cores sharing it, for level 1..Levels.</summary>
    public (uint Bytes, uint Sharing) Level(int level) =>
        level < 1 || level > Levels
            ? throw new ArgumentOutOfRangeException(nameof(level))
            : (*(uint*)(_cpu + SizesAt + 4 * (level - 1)), *(uint*)(_cpu + SharingAt + 4 * (level - 1)));

    /// <summary>Every recorded level is under 1 KiB: the sign of a zeroed cache-topology leaf.</summary>
    public bool IsDegenerate
    {
        get
        {
            if (Levels == 0) return false;
            for (int l = 1; l <= Levels; l++)
                if (Level(l).Bytes >= 1024) return false;
            return true;
        }
    }

    /// <summary>The table as it stands: level count, then each level's size and sharing.</summary>
    public uint[] Snapshot()
    {
        var levels = Levels;
        var values = new uint[1 + 2 * levels];
        values[0] = levels;
        for (int l = 1; l <= levels; l++) (values[2 * l - 1], values[2 * l]) = Level(l);
        return values;
    }

    /// <summary>Puts back a <see cref="Snapshot"/>.</summary>
    public void Restore(uint[] snapshot)
    {
        uint levels = snapshot[0];
        if (levels > MaxLevels || snapshot.Length != 1 + 2 * levels) throw new ArgumentException("not a snapshot of this table", nameof(snapshot));
        for (int i = 0; i < levels; i++)
        {
            *(uint*)(_cpu + SizesAt + 4 * i) = snapshot[1 + 2 * i];
            *(uint*)(_cpu + SharingAt + 4 * i) = snapshot[2 + 2 * i];
        }
        Levels = levels;
    }

    /// <summary>Makes oneDNN use its own guesses (32 KiB, 512 KiB and 1 MiB per core), as oneDNN v3.10 does when CPUID has no cache data.</summary>
    public void UseGuesses() => Levels = 0;

    /// <summary>
    /// Records the given sizes, for tests that reproduce a zeroed leaf on a healthy machine:
    /// <c>Plant([1, 1, 1])</c> is what oneDNN v3.7 reads on the affected virtual machines.
    /// </summary>
    public void Plant(uint[] bytesPerLevel)
    {
        if (bytesPerLevel.Length > MaxLevels) throw new ArgumentOutOfRangeException(nameof(bytesPerLevel));
        for (int i = 0; i < bytesPerLevel.Length; i++)
        {
            *(uint*)(_cpu + SizesAt + 4 * i) = bytesPerLevel[i];
            *(uint*)(_cpu + SharingAt + 4 * i) = 1;
        }
        Levels = (uint)bytesPerLevel.Length;
    }

    /// <summary>"L1 32 KiB/1, L2 1024 KiB/1, L3 32768 KiB/8" (size / cores sharing), or "guesses".</summary>
    public string Describe()
    {
        if (Levels == 0) return "none recorded (oneDNN's guesses: 32 KiB, 512 KiB, 1 MiB per core)";
        var parts = new List<string>();
        for (int l = 1; l <= Levels; l++)
        {
            var (bytes, sharing) = Level(l);
            parts.Add(bytes >= 1024
                ? string.Create(CultureInfo.InvariantCulture, $"L{l} {bytes / 1024} KiB/{sharing}")
                : string.Create(CultureInfo.InvariantCulture, $"L{l} {bytes} B/{sharing}"));
        }
        return string.Join(", ", parts);
    }
}
