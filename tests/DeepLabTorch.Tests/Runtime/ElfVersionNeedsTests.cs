using System.Buffers.Binary;
using System.Text;
using DeepLabTorch.Runtime;
using Xunit;

namespace DeepLabTorch.Tests.Runtime;

/// <summary>The Debian 12 load fix: only the flags of the GLIBCXX_3.4.32 requirement change, once.</summary>
public class ElfVersionNeedsTests
{
    /// <summary>
    /// A minimal ELF64 file built by hand: a null section, a .dynstr string table and a .gnu.version_r
    /// with one Verneed (libstdc++.so.6) holding two Vernaux entries (GLIBCXX_3.4.32, GLIBCXX_3.4.21).
    /// </summary>
    private static byte[] HandMadeElf()
    {
        var strings = Encoding.ASCII.GetBytes("\0libstdc++.so.6\0GLIBCXX_3.4.32\0GLIBCXX_3.4.21\0");
        const int fileName = 1, v32 = 16, v21 = 31;
        const int strOff = 64, verOff = 128, shOff = 192;
        var elf = new byte[shOff + 3 * 64];
        elf[0] = 0x7f; elf[1] = (byte)'E'; elf[2] = (byte)'L'; elf[3] = (byte)'F'; elf[4] = 2; elf[5] = 1; elf[6] = 1;
        BinaryPrimitives.WriteUInt64LittleEndian(elf.AsSpan(0x28), shOff);
        BinaryPrimitives.WriteUInt16LittleEndian(elf.AsSpan(0x3A), 64);
        BinaryPrimitives.WriteUInt16LittleEndian(elf.AsSpan(0x3C), 3);
        strings.CopyTo(elf, strOff);
        // Verneed: version 1, 2 aux entries, file name, aux at +16, no next.
        var v = elf.AsSpan(verOff);
        BinaryPrimitives.WriteUInt16LittleEndian(v, 1);
        BinaryPrimitives.WriteUInt16LittleEndian(v[2..], 2);
        BinaryPrimitives.WriteUInt32LittleEndian(v[4..], fileName);
        BinaryPrimitives.WriteUInt32LittleEndian(v[8..], 16);
        // Vernaux 1: hash, flags 0, other 2, name, next +16. Vernaux 2: flags 0, other 3, name, next 0.
        BinaryPrimitives.WriteUInt32LittleEndian(v[16..], 0x1234);
        BinaryPrimitives.WriteUInt16LittleEndian(v[22..], 2);
        BinaryPrimitives.WriteUInt32LittleEndian(v[24..], v32);
        BinaryPrimitives.WriteUInt32LittleEndian(v[28..], 16);
        BinaryPrimitives.WriteUInt32LittleEndian(v[32..], 0x5678);
        BinaryPrimitives.WriteUInt16LittleEndian(v[38..], 3);
        BinaryPrimitives.WriteUInt32LittleEndian(v[40..], v21);
        // Section 1: .dynstr (SHT_STRTAB = 3); section 2: .gnu.version_r linked to 1, one entry.
        var s1 = elf.AsSpan(shOff + 64);
        BinaryPrimitives.WriteUInt32LittleEndian(s1[4..], 3);
        BinaryPrimitives.WriteUInt64LittleEndian(s1[24..], strOff);
        BinaryPrimitives.WriteUInt64LittleEndian(s1[32..], (ulong)strings.Length);
        var s2 = elf.AsSpan(shOff + 128);
        BinaryPrimitives.WriteUInt32LittleEndian(s2[4..], 0x6ffffffe);
        BinaryPrimitives.WriteUInt64LittleEndian(s2[24..], verOff);
        BinaryPrimitives.WriteUInt64LittleEndian(s2[32..], 48);
        BinaryPrimitives.WriteUInt32LittleEndian(s2[40..], 1);
        BinaryPrimitives.WriteUInt32LittleEndian(s2[44..], 1);
        return elf;
    }

    [Fact]
    public void ReadsEveryRequirementWithItsFile()
    {
        var r = ElfVersionNeeds.Read(HandMadeElf());
        Assert.Equal(new[] { "GLIBCXX_3.4.32", "GLIBCXX_3.4.21" }, r.Select(x => x.Version));
        Assert.All(r, x => Assert.Equal("libstdc++.so.6", x.File));
        Assert.All(r, x => Assert.False(x.IsWeak));
    }

    [Fact]
    public void OnlyTheTwoFlagBytesChangeAndASecondRunChangesNothing()
    {
        var original = HandMadeElf();
        var patched = (byte[])original.Clone();
        Assert.Equal(1, ElfVersionNeeds.MakeWeak(patched, "GLIBCXX_3.4.32"));
        var changed = Enumerable.Range(0, original.Length).Where(i => original[i] != patched[i]).ToArray();
        // vna_flags of the first Vernaux sits at 128 + 16 + 4: little-endian 0x0000 -> 0x0002.
        Assert.Equal(new[] { 148 }, changed);
        Assert.Equal(2, patched[148]);
        Assert.Equal(0, patched[149]);
        var again = (byte[])patched.Clone();
        Assert.Equal(0, ElfVersionNeeds.MakeWeak(again, "GLIBCXX_3.4.32"));
        Assert.Equal(patched, again);
        var r = ElfVersionNeeds.Read(patched);
        Assert.True(r[0].IsWeak);
        Assert.False(r[1].IsWeak);
    }

    [Fact]
    public void AbsentVersionAndNonElfInput()
    {
        var elf = HandMadeElf();
        Assert.Equal(0, ElfVersionNeeds.MakeWeak(elf, "GLIBCXX_9.9"));
        Assert.Throws<InvalidDataException>(() => ElfVersionNeeds.Read(new byte[100]));
        var truncated = HandMadeElf()[..200];
        Assert.Throws<InvalidDataException>(() => ElfVersionNeeds.Read(truncated));
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void TheFileFixKeepsTimestampAndMode()
    {
        using var dir = new TempDir();
        var path = dir["libLibTorchSharp.so"];
        File.WriteAllBytes(path, HandMadeElf());
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var stamp = new DateTime(2026, 1, 2, 3, 4, 5, DateTimeKind.Utc);
        File.SetLastWriteTimeUtc(path, stamp);
        Assert.Equal(1, ElfVersionNeeds.MakeWeakInFile(path));
        Assert.Equal(0, ElfVersionNeeds.MakeWeakInFile(path));
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(path));
        Assert.True(File.GetUnixFileMode(path).HasFlag(UnixFileMode.UserExecute));
        Assert.True(ElfVersionNeeds.IsWeak(path));
    }

    /// <summary>The build patched the copy this test run loads, and TorchSharp works through it.</summary>
    [LinuxFact("the build patches libLibTorchSharp.so, TorchSharp's Linux library")]
    public void TheBuildOutputIsPatchedAndTorchSharpLoads()
    {
        var (path, weak) = TorchRuntime.ElfFixStatus();
        Assert.NotNull(path);
        Assert.NotEqual(false, weak);
        TorchRuntime.EnsureLoaded();
        Assert.StartsWith("2.10", TorchRuntime.LibTorchVersion);
        using var t = TorchSharp.torch.ones(3);
        Assert.Equal(3f, t.sum().item<float>());
        // No fallback copy of the natives next to the tests (TorchSharp's "cpu" folder).
        Assert.False(Directory.Exists(Path.Combine(AppContext.BaseDirectory, "cpu")), "TorchSharp's fallback copied its natives into the output");
    }
}
