using System.Globalization;
using System.Runtime.Intrinsics.X86;
using System.Text;

namespace DeepLabTorch.Runtime;

/// <summary>
/// What CPUID says about this processor: vendor, family/model/stepping as oneDNN's xbyak computes them,
/// the brand string, and whether the AMD cache-topology leaf (0x8000001D) describes any cache. Some
/// virtual machines zero that leaf; libtorch 2.10's oneDNN (v3.7.1) then takes every cache to be one
/// byte (docs/cpu-kernels.md).
/// </summary>
internal sealed record CpuIdentity(
    string Vendor, int Family, int Model, int Stepping, int BaseFamily, int BaseModel, int ExtFamily, int ExtModel,
    string Brand, bool AmdCacheLeafPresent, bool AmdCacheLeafEmpty, uint LegacyL1dBytes, uint LegacyL2Bytes, string CacheTopology = "")
{
    /// <summary>The key a verdict is cached under: vendor, family, model, stepping and brand.</summary>
    public string Key => string.Create(CultureInfo.InvariantCulture, $"{Vendor} family {Family} model {Model} stepping {Stepping} {Brand}").Trim();

    /// <summary>One line for logs and `deeplab info`.</summary>
    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"{(Brand.Length > 0 ? Brand : Vendor)} (family {Family}, model {Model}, stepping {Stepping})");

    public bool IsAmd => Vendor == "AuthenticAMD";

    /// <summary>This processor, or null where CPUID is not available (not x86).</summary>
    public static CpuIdentity? Current { get; } = Read();

    private static CpuIdentity? Read()
    {
        if (!X86Base.IsSupported) return null;
        var (maxLeaf, b0, c0, d0) = X86Base.CpuId(0, 0);
        var vendor = Ascii(b0, d0, c0);
        int stepping = 0, model = 0, family = 0, extModel = 0, extFamily = 0;
        if (maxLeaf >= 1)
        {
            var eax = X86Base.CpuId(1, 0).Eax;
            stepping = eax & 0xF;
            model = (eax >> 4) & 0xF;
            family = (eax >> 8) & 0xF;
            extModel = (eax >> 16) & 0xF;
            extFamily = (eax >> 20) & 0xFF;
        }
        int displayFamily = family == 0xF ? family + extFamily : family;
        int displayModel = family is 6 or 0xF ? (extModel << 4) + model : model;
        uint maxExt = (uint)X86Base.CpuId(unchecked((int)0x80000000), 0).Eax;
        var brand = new StringBuilder();
        if (maxExt >= 0x80000004)
            for (uint leaf = 0x80000002; leaf <= 0x80000004; leaf++)
            {
                var (a, b, c, d) = X86Base.CpuId(unchecked((int)leaf), 0);
                brand.Append(Ascii(a, b, c, d));
            }
        bool present = maxExt >= 0x8000001D, empty = true;
        if (present)
            for (int sub = 0; sub < 4; sub++)
            {
                var (a, b, c, _) = X86Base.CpuId(unchecked((int)0x8000001D), sub);
                if (a != 0 || b != 0 || c != 0) empty = false;
            }
        uint l1 = 0, l2 = 0;
        if (maxExt >= 0x80000005) l1 = (uint)(X86Base.CpuId(unchecked((int)0x80000005), 0).Ecx >>> 24) * 1024u;
        if (maxExt >= 0x80000006) l2 = (uint)(X86Base.CpuId(unchecked((int)0x80000006), 0).Ecx >>> 16) * 1024u;
        return new CpuIdentity(vendor, displayFamily, displayModel, stepping, family, model, extFamily, extModel,
            brand.ToString().Replace("\0", "", StringComparison.Ordinal).Trim(), present, present && empty, l1, l2,
            Topology(vendor == "AuthenticAMD", maxLeaf, present && empty));
    }

    /// <summary>
    /// The data caches as oneDNN's xbyak reads them from CPUID (AMD: leaf 0x8000001D, sub-leaves 0, 2, 3;
    /// Intel: leaf 4), size = ways x partitions x line x sets, without touching libtorch: cheap enough for
    /// every process, and the part of the verdict's key that tells two virtual machines of one CPU model apart.
    /// </summary>
    private static string Topology(bool amd, int maxLeaf, bool amdLeafEmpty)
    {
        static uint Size(int b, int c) => (uint)((((b >>> 22) & 0x3FF) + 1) * (((b >>> 12) & 0x3FF) + 1) * ((b & 0xFFF) + 1) * (c + 1));
        var sizes = new List<string>();
        if (amd)
        {
            if (amdLeafEmpty) return "CPUID leaf 0x8000001D empty";
            foreach (var sub in new[] { 0, 2, 3 })
            {
                var (_, b, c, _) = X86Base.CpuId(unchecked((int)0x8000001D), sub);
                sizes.Add($"{Size(b, c) / 1024} KiB");
            }
        }
        else if (maxLeaf >= 4)
            for (int sub = 0; sub < 10; sub++)
            {
                var (a, b, c, _) = X86Base.CpuId(4, sub);
                int type = a & 0x1F;
                if (type == 0) break;
                if (type is 1 or 3) sizes.Add($"{Size(b, c) / 1024} KiB");
            }
        return sizes.Count == 0 ? "no cache data in CPUID" : "data caches " + string.Join(", ", sizes);
    }

    private static string Ascii(params int[] registers)
    {
        var bytes = new byte[registers.Length * 4];
        for (int i = 0; i < registers.Length; i++) BitConverter.TryWriteBytes(bytes.AsSpan(i * 4), registers[i]);
        return Encoding.ASCII.GetString(bytes);
    }
}
