namespace DeepLabTorch.Reporting;

/// <summary>CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord framing uses it.</summary>
public static class Crc32C
{
    private static readonly uint[] Table = BuildTable();

    private static uint[] BuildTable()
    {
        var t = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            var c = i;
            for (var k = 0; k < 8; k++) c = (c & 1) != 0 ? 0x82F63B78u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }

    public static uint Compute(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data) crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return crc ^ 0xFFFFFFFFu;
    }

    /// <summary>TFRecord's masked CRC: rotate right by 15 bits and add a constant, so CRCs of CRCs stay well-behaved.</summary>
    public static uint Masked(ReadOnlySpan<byte> data)
    {
        var c = Compute(data);
        return unchecked(((c >> 15) | (c << 17)) + 0xA282EAD8u);
    }
}
