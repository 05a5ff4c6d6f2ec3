using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text;
using TorchSharp;

namespace DeepLabTorch.Runtime;

/// <summary>
/// Switches and tables inside libtorch_cpu.so that TorchSharp does not bind: at::Context's mkldnn and
/// NNPACK switches (exported C++ symbols; under the Itanium ABI a member function takes `this` first), and
/// oneDNN's copy of the CPU's cache sizes (a local symbol, found in the library's own symbol table).
/// </summary>
internal static unsafe class LibTorchNative
{
    private const string GlobalContext = "_ZN2at13globalContextEv";
    private const string SetMkldnn = "_ZN2at7Context20setUserEnabledMkldnnEb";
    private const string GetMkldnn = "_ZNK2at7Context17userEnabledMkldnnEv";
    private const string SetNnpack = "_ZN2at7Context20setUserEnabledNNPACKEb";
    private const string GetNnpack = "_ZNK2at7Context17userEnabledNNPACKEv";
    private const string NnpackAvailableSymbol = "_ZN2at6native17_nnpack_availableEv";

    private static readonly object Gate = new();
    private static IntPtr _library;

    [StructLayout(LayoutKind.Sequential)]
    private struct DlInfo
    {
        public IntPtr FileName;
        public IntPtr FileBase;
        public IntPtr SymbolName;
        public IntPtr SymbolAddress;
    }

    [DllImport("libc", EntryPoint = "dladdr")]
    private static extern int DlAddr(IntPtr address, out DlInfo info);

    [DllImport("libc", EntryPoint = "setenv", CharSet = CharSet.Ansi, BestFitMapping = false)]
    private static extern int SetEnv([MarshalAs(UnmanagedType.LPStr)] string name, [MarshalAs(UnmanagedType.LPStr)] string value, int overwrite);

    [DllImport("libc", EntryPoint = "getenv", CharSet = CharSet.Ansi, BestFitMapping = false)]
    private static extern IntPtr GetEnv([MarshalAs(UnmanagedType.LPStr)] string name);

    /// <summary>
    /// Sets a variable in the C library's environment, which native code reads with getenv. .NET's
    /// Environment.SetEnvironmentVariable keeps its own copy on Linux and never reaches native code.
    /// </summary>
    public static void SetNativeEnvironment(string name, string value)
    {
        if (SetEnv(name, value, 1) != 0) throw new InvalidOperationException($"setenv({name}) failed");
    }

    /// <summary>A variable as native code sees it (null when unset).</summary>
    public static string? GetNativeEnvironment(string name) => Marshal.PtrToStringAnsi(GetEnv(name));

    private static IntPtr Library
    {
        get
        {
            lock (Gate)
            {
                if (_library != IntPtr.Zero) return _library;
                TorchRuntime.EnsureLoaded();
                if (!OperatingSystem.IsLinux() || !NativeLibrary.TryLoad("libtorch_cpu.so", typeof(torch).Assembly, null, out var lib))
                    throw new PlatformNotSupportedException("libtorch_cpu.so is not loaded");
                return _library = lib;
            }
        }
    }

    private static IntPtr Export(string name) =>
        NativeLibrary.TryGetExport(Library, name, out var address)
            ? address
            : throw new EntryPointNotFoundException($"libtorch_cpu.so exports no {name}");

    private static IntPtr Context => ((delegate* unmanaged<IntPtr>)Export(GlobalContext))();

    /// <summary>Whether libtorch may use oneDNN (mkldnn) kernels: torch.backends.mkldnn.enabled.</summary>
    public static bool MkldnnEnabled
    {
        get => ((delegate* unmanaged<IntPtr, byte>)Export(GetMkldnn))(Context) != 0;
        set => ((delegate* unmanaged<IntPtr, byte, void>)Export(SetMkldnn))(Context, value ? (byte)1 : (byte)0);
    }

    /// <summary>Whether libtorch may use NNPACK: torch.backends.nnpack.enabled.</summary>
    public static bool NnpackEnabled
    {
        get => ((delegate* unmanaged<IntPtr, byte>)Export(GetNnpack))(Context) != 0;
        set => ((delegate* unmanaged<IntPtr, byte, void>)Export(SetNnpack))(Context, value ? (byte)1 : (byte)0);
    }

    /// <summary>torch._nnpack_available(): tries to initialise NNPACK (and prints why it cannot, to stderr).</summary>
    public static bool NnpackAvailable() => ((delegate* unmanaged<byte>)Export(NnpackAvailableSymbol))() != 0;

    /// <summary>The path and load address of libtorch_cpu.so, from dladdr on one of its exports.</summary>
    public static (string Path, IntPtr Base) LoadedLibrary()
    {
        var address = Export(GlobalContext);
        if (DlAddr(address, out var info) == 0 || info.FileName == IntPtr.Zero)
            throw new InvalidOperationException("dladdr found no library for libtorch_cpu.so's exports");
        return (Marshal.PtrToStringUTF8(info.FileName)!, info.FileBase);
    }

    /// <summary>
    /// The value (address relative to the load base) of a symbol in an ELF64 file's full symbol table
    /// (.symtab, which stripped libraries lack), or null when the file has no such symbol.
    /// </summary>
    public static ulong? FindSymbol(string path, string name)
    {
        using var file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        using var view = file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* start = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref start);
        try
        {
            long length = (long)view.SafeMemoryMappedViewHandle.ByteLength;
            return FindSymbol(start + view.PointerOffset, length - view.PointerOffset, name);
        }
        finally
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
    }

    private static ulong? FindSymbol(byte* elf, long length, string name)
    {
        static void Check(bool ok, string what)
        {
            if (!ok) throw new InvalidDataException(what);
        }
        Check(length >= 64 && elf[0] == 0x7f && elf[1] == 'E' && elf[2] == 'L' && elf[3] == 'F' && elf[4] == 2 && elf[5] == 1,
            "not a 64-bit little-endian ELF file");
        long shoff = *(long*)(elf + 0x28);
        int shentsize = *(ushort*)(elf + 0x3A), shnum = *(ushort*)(elf + 0x3C);
        Check(shentsize == 64 && shoff > 0 && shoff + shnum * 64L <= length, "section headers out of range");
        for (int i = 0; i < shnum; i++)
        {
            byte* sh = elf + shoff + i * 64L;
            if (*(uint*)(sh + 4) != 2) continue; // SHT_SYMTAB
            long symOff = *(long*)(sh + 24), symSize = *(long*)(sh + 32), entSize = *(long*)(sh + 56);
            uint link = *(uint*)(sh + 40);
            Check(entSize == 24 && symOff >= 0 && symOff + symSize <= length && link < shnum, "symbol table out of range");
            byte* strSh = elf + shoff + link * 64L;
            long strOff = *(long*)(strSh + 24), strSize = *(long*)(strSh + 32);
            Check(strOff >= 0 && strOff + strSize <= length && strSize < int.MaxValue, "string table out of range");
            var strings = new ReadOnlySpan<byte>(elf + strOff, (int)strSize);
            // Every place the name ends a string (string tables share suffixes), then the symbol naming one of them.
            var wanted = Encoding.ASCII.GetBytes(name + "\0");
            var offsets = new HashSet<uint>();
            for (int from = 0; from < strings.Length;)
            {
                int hit = strings[from..].IndexOf(wanted);
                if (hit < 0) break;
                offsets.Add((uint)(from + hit));
                from += hit + 1;
            }
            if (offsets.Count == 0) return null;
            for (long s = 0; s < symSize / 24; s++)
            {
                byte* sym = elf + symOff + s * 24;
                if (offsets.Contains(*(uint*)sym)) return *(ulong*)(sym + 8);
            }
            return null;
        }
        return null;
    }
}
