using System.Buffers.Binary;
using System.Text.Json;
using DeepLabTorch.Data;
using DeepLabTorch.Data.Png;
using Xunit;

namespace DeepLabTorch.Tests.Data.Png;

public class PngReaderTests
{
    [LinuxFact(LinuxOnly.Python)]
    public void EveryColourTypeDepthFilterAndInterlaceReadsExactly()
    {
        var dir = PngTestFiles.Fixtures;
        var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "manifest.json"))).RootElement;
        int count = 0, interlaced = 0;
        var kinds = new HashSet<(int, int)>();
        foreach (var e in manifest.EnumerateArray())
        {
            var file = Path.Combine(dir, e.GetProperty("file").GetString()!);
            var png = PngReader.Read(file, File.ReadAllBytes(file));
            var h = png.Header;
            Assert.Equal((e.GetProperty("w").GetInt32(), e.GetProperty("h").GetInt32()), (h.Width, h.Height));
            Assert.Equal((e.GetProperty("depth").GetInt32(), e.GetProperty("color").GetInt32()), (h.BitDepth, (int)h.ColorType));
            Assert.Equal(e.GetProperty("interlace").GetInt32() == 1, h.Interlaced);
            Assert.True(File.ReadAllBytes(file + ".bin").AsSpan().SequenceEqual(png.Samples), $"{file}: samples differ from the reference");
            if (e.GetProperty("palette").ValueKind == JsonValueKind.Array)
            {
                var pal = e.GetProperty("palette").EnumerateArray().Select(v => (byte)v.GetInt32()).ToArray();
                Assert.Equal(pal, png.Palette!.Take(pal.Length));
            }
            count++;
            if (h.Interlaced) interlaced++;
            kinds.Add((h.BitDepth, (int)h.ColorType));
        }
        // 15 depth/colour pairs, each plain and interlaced (plus PIL's own files).
        Assert.Equal(15, kinds.Count);
        Assert.True(interlaced >= 60 && count >= 130, $"{count} files, {interlaced} interlaced");
    }

    [LinuxFact(LinuxOnly.Python)]
    public void PaletteMasksGiveIndicesAndSixteenBitGrayItsValues()
    {
        var dir = PngTestFiles.Fixtures;
        foreach (var name in new[] { "own_c3_d4_i1_29x37.png", "pil_P_2.png", "own_c0_d16_i1_29x37.png" })
        {
            var file = Path.Combine(dir, name);
            var expected = File.ReadAllBytes(file + ".bin");
            if (name.Contains("d16"))
            {
                // The reference holds values up to 65535: the mask rule refuses values above 255.
                var e = Assert.Throws<DataException>(() => ImageCodec.DecodeMask(file));
                Assert.Contains("does not fit", e.Message);
                continue;
            }
            Assert.Equal(expected, ImageCodec.DecodeMask(file).Indices);
        }
    }

    [LinuxFact(LinuxOnly.Python)]
    public void GrayAlphaMasksGiveTheGrayAndColourMasksMustBeVocColours()
    {
        var la = Path.Combine(PngTestFiles.Fixtures, "pil_LA_8.png");
        var samples = File.ReadAllBytes(la + ".bin");
        Assert.Equal(samples.Where((_, i) => i % 2 == 0).ToArray(), ImageCodec.DecodeMask(la).Indices);
        // Its top half is gray ramps (x*7 in every channel), its bottom half noise: not all gray, so each colour must be a
        // VOC colour. (0,0,0) is (background); (7,7,7) at x=1 is the first that is not.
        var rgb = Path.Combine(PngTestFiles.Fixtures, "own_c2_d8_i1_29x37.png");
        var e = Assert.Throws<DataException>(() => ImageCodec.DecodeMask(rgb));
        Assert.Contains("is not a VOC palette colour", e.Reason);
        Assert.Contains("colour (7,7,7) at pixel (x=1, y=0)", e.Reason);
    }

    public static TheoryData<string, string> Corruptions => new()
    {
        { "signature", "bad signature" },
        { "ihdr-crc", "bad CRC in IHDR" },
        { "idat-crc", "bad CRC in chunk IDAT" },
        { "zlib", "zlib" },
        { "adler", "zlib" },
        { "truncated", "truncated PNG" },
        { "no-iend", "truncated PNG" },
        { "wider", "truncated PNG" },
        { "narrower", "more image data" },
        { "filter", "unknown row filter 9" },
        { "depth", "bit depth 3" },
        { "huge", "implausible image size 100000x100000" },
        { "empty", "bad signature" },
    };

    [Theory]
    [MemberData(nameof(Corruptions))]
    public void BadFilesAreErrorsNamingTheFileAndTheReason(string kind, string reason)
    {
        var png = Corrupt(PngTestFiles.PalettePng(), kind);
        var e = Assert.Throws<DataException>(() => PngReader.Read("masks/bad.png", png));
        Assert.Equal("masks/bad.png", e.Path);
        Assert.Contains(reason, e.Reason);
        Assert.Throws<DataException>(() => ImageCodec.DecodeMask("masks/bad.png", png));
    }

    private static byte[] Corrupt(byte[] png, string kind)
    {
        var idat = PngTestFiles.Chunks(png).First(c => c.Type == "IDAT");
        switch (kind)
        {
            case "signature": png[1] = (byte)'J'; break;
            case "ihdr-crc": png[16 + 3] ^= 1; break;
            case "idat-crc": png[idat.Offset + 8 + idat.Length / 2] ^= 0x40; break;
            case "zlib":
                png[idat.Offset + 8] = 0x78;
                png[idat.Offset + 9] = 0x00; // header check bits wrong
                PngTestFiles.FixCrc(png, idat.Offset);
                break;
            case "adler": // the zlib stream's own checksum, the last IDAT byte
                png[idat.Offset + 8 + idat.Length - 1] ^= 0xFF;
                PngTestFiles.FixCrc(png, idat.Offset);
                break;
            case "truncated": return png[..(idat.Offset + 8 + idat.Length / 2)];
            case "no-iend": return png[..^12];
            case "wider": return SetIhdr(png, 16, 4000);
            case "narrower": return SetIhdr(png, 20, 5);
            case "filter":
                var raw = PngTestFiles.RawIdat(png);
                raw[(1 + 17) * 3] = 9; // the fourth row's filter byte
                return PngTestFiles.WithIdat(png, raw);
            case "depth": png[24] = 3; PngTestFiles.FixCrc(png, 8); break;
            case "huge": return SetIhdr(SetIhdr(png, 16, 100000), 20, 100000);
            case "empty": return [];
        }
        return png;
    }

    private static byte[] SetIhdr(byte[] png, int offset, int value)
    {
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(offset), (uint)value);
        PngTestFiles.FixCrc(png, 8);
        return png;
    }

    [Fact]
    public void LargeHeaderWithLittleDataIsRefusedBeforeAllocating()
    {
        // 16384 x 16384 is within the pixel limit, but a few dozen bytes of IDAT cannot hold 268 MB of pixels.
        var png = PngTestFiles.PalettePng();
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(16), 16384);
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(20), 16384);
        PngTestFiles.FixCrc(png, 8);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<DataException>(() => PngReader.Read("big.png", png));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Contains("too short", e.Reason);
        Assert.True(allocated < 1 << 20, $"{allocated} bytes allocated before refusing");
    }

    [Fact]
    public void BadCrcInAnAncillaryChunkIsSkippedLikeLibpng()
    {
        var png = PngTestFiles.PalettePng();
        var text = new byte[12 + 5];
        BinaryPrimitives.WriteUInt32BigEndian(text, 5);
        "tEXt"u8.CopyTo(text.AsSpan(4));
        "a\0bcd"u8.CopyTo(text.AsSpan(8));
        // CRC left as zeros: wrong on purpose.
        byte[] withText = [.. png.AsSpan(0, 33), .. text, .. png.AsSpan(33)];
        Assert.Equal(PngReader.Read("a.png", png).Samples, PngReader.Read("b.png", withText).Samples);
    }
}
