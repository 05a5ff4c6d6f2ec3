using System.Buffers.Binary;
using System.Text;

namespace DeepLabTorch.Runtime;

/// <summary>
/// Reads and edits the version requirements (<c>.gnu.version_r</c>) of a 64-bit little-endian ELF
/// shared library. It exists for one edit: TorchSharp 0.107's libLibTorchSharp.so asks for
/// GLIBCXX_3.4.32 for a single symbol that GCC 13's &lt;iostream&gt; references and never calls, and
/// Debian 12's libstdc++ stops at 3.4.30. Marking that requirement weak (VER_FLG_WEAK) turns the
/// loader's hard error into nothing at all; every other byte of the file stays as it was.
/// Compiled into the library (for <c>deeplab info</c>) and into tools/ElfFix (run by the build).
/// </summary>
internal static class ElfVersionNeeds
{
    public const string TorchSharpLibrary = "libLibTorchSharp.so";
    public const string GlibcxxVersion = "GLIBCXX_3.4.32";
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlagWeak = 0x2;

    /// <summary>One needed version: its name, the library it comes from, its flags and where the flags sit in the file.</summary>
    public readonly record struct Requirement(string File, string Version, ushort Flags, long FlagsOffset)
    {
        public bool IsWeak => (Flags & VerFlagWeak) != 0;
    }

    /// <summary>Every Vernaux entry of the file, in file order. Throws InvalidDataException for anything that is not a sane ELF64 LE file.</summary>
    public static IReadOnlyList<Requirement> Read(ReadOnlySpan<byte> elf)
    {
        Check(elf.Length >= 64 && elf[0] == 0x7f && elf[1] == (byte)'E' && elf[2] == (byte)'L' && elf[3] == (byte)'F', "not an ELF file");
        Check(elf[4] == 2 && elf[5] == 1, "only 64-bit little-endian ELF files are supported");
        long shoff = (long)U64(elf, 0x28);
        int shentsize = U16(elf, 0x3A), shnum = U16(elf, 0x3C);
        Check(shentsize == 64 && shoff > 0 && shoff + (long)shnum * 64 <= elf.Length, "section header table out of range");
        var result = new List<Requirement>();
        for (int i = 0; i < shnum; i++)
        {
            var sh = elf.Slice((int)(shoff + i * 64L), 64);
            if (U32(sh, 4) != ShtGnuVerneed) continue;
            long offset = (long)U64(sh, 24), size = (long)U64(sh, 32);
            int link = (int)U32(sh, 40), count = (int)U32(sh, 44);
            Check(offset >= 0 && size >= 0 && offset + size <= elf.Length && link < shnum, "version section out of range");
            var strtab = elf.Slice((int)(shoff + link * 64L), 64);
            long strOff = (long)U64(strtab, 24), strSize = (long)U64(strtab, 32);
            Check(strOff + strSize <= elf.Length, "string table out of range");
            ReadVerneed(elf, offset, size, count, elf.Slice((int)strOff, (int)strSize), result);
        }
        return result;
    }

    private static void ReadVerneed(ReadOnlySpan<byte> elf, long offset, long size, int count, ReadOnlySpan<byte> strings, List<Requirement> result)
    {
        long need = offset;
        for (int n = 0; n < count; n++)
        {
            Check(need + 16 <= offset + size, "version need entry out of range");
            int auxCount = U16(elf, need + 2);
            string file = Str(strings, U32(elf, need + 4));
            long aux = need + U32(elf, need + 8);
            for (int a = 0; a < auxCount; a++)
            {
                Check(aux + 16 <= offset + size, "version need auxiliary entry out of range");
                result.Add(new Requirement(file, Str(strings, U32(elf, aux + 8)), U16(elf, aux + 4), aux + 4));
                uint nextAux = U32(elf, aux + 12);
                if (nextAux == 0) break;
                aux += nextAux;
            }
            uint next = U32(elf, need + 12);
            if (next == 0) break;
            need += next;
        }
    }

    /// <summary>
    /// Sets VER_FLG_WEAK on every requirement of <paramref name="version"/>. Returns how many entries
    /// changed (0 when they were weak already or absent): a second run changes nothing.
    /// </summary>
    public static int MakeWeak(Span<byte> elf, string version)
    {
        int changed = 0;
        foreach (var r in Read(elf))
        {
            if (r.Version != version || r.IsWeak) continue;
            BinaryPrimitives.WriteUInt16LittleEndian(elf.Slice((int)r.FlagsOffset, 2), (ushort)(r.Flags | VerFlagWeak));
            changed++;
        }
        return changed;
    }

    /// <summary>
    /// Applies <see cref="MakeWeak"/> to a file. The edited copy replaces the file by rename, so a hard
    /// link into the NuGet cache is never written through, and it keeps the original's timestamp so
    /// MSBuild's incremental copy sees the file as up to date. Returns the number of entries changed.
    /// </summary>
    public static int MakeWeakInFile(string path, string version = GlibcxxVersion)
    {
        var bytes = File.ReadAllBytes(path);
        int changed = MakeWeak(bytes, version);
        if (changed == 0) return 0;
        var stamp = File.GetLastWriteTimeUtc(path);
        var mode = OperatingSystem.IsWindows() ? default : File.GetUnixFileMode(path);
        var temp = path + ".weak-tmp";
        File.WriteAllBytes(temp, bytes);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(temp, mode);
        File.SetLastWriteTimeUtc(temp, stamp);
        File.Move(temp, path, overwrite: true);
        return changed;
    }

    /// <summary>Whether a file's requirement of <paramref name="version"/> is weak (null when it has none).</summary>
    public static bool? IsWeak(string path, string version = GlibcxxVersion)
    {
        var found = Read(File.ReadAllBytes(path)).Where(r => r.Version == version).ToList();
        return found.Count == 0 ? null : found.All(r => r.IsWeak);
    }

    private static void Check(bool ok, string what)
    {
        if (!ok) throw new InvalidDataException(what);
    }

    private static ushort U16(ReadOnlySpan<byte> b, long at) => BinaryPrimitives.ReadUInt16LittleEndian(b.Slice((int)at, 2));
    private static uint U32(ReadOnlySpan<byte> b, long at) => BinaryPrimitives.ReadUInt32LittleEndian(b.Slice((int)at, 4));
    private static ulong U64(ReadOnlySpan<byte> b, long at) => BinaryPrimitives.ReadUInt64LittleEndian(b.Slice((int)at, 8));

    private static string Str(ReadOnlySpan<byte> strings, uint at)
    {
        Check(at < strings.Length, "string offset out of range");
        var rest = strings[(int)at..];
        int end = rest.IndexOf((byte)0);
        Check(end >= 0, "unterminated string");
        return Encoding.ASCII.GetString(rest[..end]);
    }
}
