using System.Buffers.Binary;
using System.Diagnostics;
using DeepLabTorch.Data;
using DeepLabTorch.Data.Png;
using Xunit;

namespace DeepLabTorch.Tests.Data.Png;

/// <summary>
/// A bounded, seeded fuzz run of the mask reader over mutated PNGs: every call must return or throw
/// DataException; an IndexOutOfRange, OutOfMemory, overflow or hang fails the test.
/// </summary>
public class PngFuzzTests
{
    private static byte[][] Seeds()
    {
        var rnd = new Random(1);
        var gray = new byte[9 * 14];
        rnd.NextBytes(gray);
        var rgb = new byte[7 * 6 * 3];
        rnd.NextBytes(rgb);
        var voc = DeepLabTorch.Data.Palette.Voc;
        for (int i = 0; i < 5 * 4; i++) (rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]) = (voc[3 * (i % 4)], voc[3 * (i % 4) + 1], voc[3 * (i % 4) + 2]);
        return [PngTestFiles.PalettePng(), PngWriter.EncodeGray(gray, 9, 14), PngWriter.EncodeRgb(rgb, 7, 6),
            PngTestFiles.PalettePng(3, 2)];
    }

    [Fact]
    public void MutatedFilesOnlyEverThrowDataException()
    {
        var seeds = Seeds();
        var rnd = new Random(12345);
        var clock = Stopwatch.StartNew();
        int runs = 0, accepted = 0;
        while (clock.Elapsed < TimeSpan.FromSeconds(3) && runs < 200_000)
        {
            var png = Mutate((byte[])seeds[rnd.Next(seeds.Length)].Clone(), rnd);
            var one = Stopwatch.StartNew();
            try
            {
                ImageCodec.DecodeMask("fuzz.png", png);
                accepted++;
            }
            catch (DataException)
            {
            }
            catch (Exception e)
            {
                Assert.Fail($"run {runs}: {e.GetType().Name}: {e.Message}\nfile: {Convert.ToHexString(png)}");
            }
            Assert.True(one.ElapsedMilliseconds < 1000, $"run {runs} took {one.ElapsedMilliseconds} ms\nfile: {Convert.ToHexString(png)}");
            runs++;
        }
        Assert.True(runs > 500, $"only {runs} runs");
        // Some mutations (an ancillary byte, a palette colour) leave a valid file: the reader must not refuse all.
        Assert.True(accepted > 0 && accepted < runs, $"{accepted} of {runs} accepted");
    }

    private static byte[] Mutate(byte[] png, Random rnd)
    {
        var chunks = PngTestFiles.Chunks(png);
        var (offset, _, length) = chunks[rnd.Next(chunks.Count)];
        switch (rnd.Next(6))
        {
            case 0: // flip bytes anywhere, CRCs left stale
                for (int k = rnd.Next(1, 4); k > 0; k--) png[rnd.Next(png.Length)] ^= (byte)(1 << rnd.Next(8));
                return png;
            case 1: // change bytes inside one chunk and make its CRC right again, so the parser goes further
                for (int k = rnd.Next(1, 4); k > 0 && length > 0; k--) png[offset + 8 + rnd.Next(length)] = (byte)rnd.Next(256);
                PngTestFiles.FixCrc(png, offset);
                return png;
            case 2:
                return png[..rnd.Next(png.Length)];
            case 3: // IHDR fields: size, depth, colour type, interlace
                int field = rnd.Next(5);
                if (field < 2) BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(16 + 4 * field), (uint)rnd.Next(0, 70000));
                else png[24 + field - 2 + (field == 4 ? 2 : 0)] = (byte)rnd.Next(0, 20);
                PngTestFiles.FixCrc(png, 8);
                return png;
            case 4: // the pixel data: filter bytes and samples rewritten, length changed, recompressed
                var raw = PngTestFiles.RawIdat(png).ToList();
                for (int k = rnd.Next(1, 6); k > 0 && raw.Count > 0; k--) raw[rnd.Next(raw.Count)] = (byte)rnd.Next(256);
                if (rnd.Next(3) == 0) raw.RemoveRange(0, rnd.Next(Math.Min(raw.Count, 20)));
                if (rnd.Next(3) == 0) raw.AddRange(new byte[rnd.Next(1, 40)]);
                return PngTestFiles.WithIdat(png, raw.ToArray());
            default: // a chunk length field
                BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(offset), (uint)rnd.Next());
                return png;
        }
    }
}
