using System.Buffers.Binary;
using System.Text;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Extensions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Checkpoints;

[Collection(CheckpointSerialCollection.Name)]
public class SafetensorsTests
{
    [Fact]
    public void EveryDtypeRoundTripsWithMetadata()
    {
        using var dir = new TempDir();
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>
        {
            ["f32"] = tensor(new[] { 1.5f, -2f, 3.25f, 0f, 7f, 8f }, new long[] { 2, 3 }),
            ["f64"] = tensor(new[] { 1e-300, 2.5 }),
            ["f16"] = tensor(new[] { 0.5f, -1.25f }).to(ScalarType.Float16),
            ["bf16"] = tensor(new[] { 0.5f, -1.25f, 3f }).to(ScalarType.BFloat16),
            ["i64"] = tensor(new[] { long.MinValue, 42L }),
            ["i32"] = tensor(new[] { -5, 9 }),
            ["i16"] = tensor(new short[] { -300, 300 }),
            ["i8"] = tensor(new sbyte[] { -128, 127 }),
            ["u8"] = tensor(new byte[] { 0, 255 }),
            ["bool"] = tensor(new[] { true, false, true }),
            ["scalar"] = tensor(new[] { 3.5f }, Array.Empty<long>()),
            ["empty"] = zeros(new long[] { 0, 4 }),
            ["noncontig"] = tensor(new[] { 1f, 2f, 3f, 4f, 5f, 6f }, new long[] { 2, 3 }).t(),
        };
        var meta = new Dictionary<string, string> { ["note"] = "héllo", ["n"] = "1" };
        var path = dir["a.safetensors"];
        Safetensors.Write(path, tensors, meta);

        // The layout by hand: u64 header length, header padded to 8 bytes, data section after it.
        var raw = File.ReadAllBytes(path);
        var n = (long)BinaryPrimitives.ReadUInt64LittleEndian(raw);
        Assert.Equal(0, n % 8);
        Assert.Equal((byte)'{', raw[8]);
        long dataBytes = 6 * 4 + 2 * 8 + 2 * 2 + 3 * 2 + 2 * 8 + 2 * 4 + 2 * 2 + 2 + 2 + 3 + 4 + 0 + 6 * 4;
        Assert.Equal(8 + n + dataBytes, raw.Length);

        using var f = Safetensors.Read(path);
        Assert.Equal(meta, f.Metadata);
        Assert.Equal(tensors.Keys.OrderBy(k => k), f.Tensors.Keys.OrderBy(k => k));
        foreach (var (k, t) in tensors)
        {
            var r = f.Tensors[k];
            Assert.Equal(t.dtype, r.dtype);
            Assert.Equal(t.shape, r.shape);
            Assert.True(t.Equals(r), k);
        }
        Assert.Equal(new[] { 1f, 4f, 2f, 5f, 3f, 6f }, f.Tensors["noncontig"].ToArray<float>());
        Assert.Equal(-1.25, f.Tensors["bf16"].to(ScalarType.Float64).ToArray<double>()[1]);
    }

    [Fact]
    public void ReadTakesOwnershipAndFreesOnDispose()
    {
        using var dir = new TempDir();
        var path = dir["b.safetensors"];
        using (var t = ones(3, 3)) Safetensors.Write(path, new Dictionary<string, Tensor> { ["w"] = t }, null);
        long before = Tensor.TotalCount;
        Tensor taken;
        using (var f = Safetensors.Read(path)) taken = f.Take("w");
        Assert.Equal(9.0f, taken.sum().item<float>());
        taken.Dispose();
        GC.KeepAlive(taken);
        Assert.True(Tensor.TotalCount <= before + 1); // the sum() temporary may still wait for the GC
    }

    // ------------------------------------------------------------------ malicious files
    private static byte[] Craft(string header, int dataBytes, ulong? lengthOverride = null) => Craft(Encoding.UTF8.GetBytes(header), dataBytes, lengthOverride);

    private static byte[] Craft(byte[] header, int dataBytes, ulong? lengthOverride = null)
    {
        var b = new byte[8 + header.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(b, lengthOverride ?? (ulong)header.Length);
        header.CopyTo(b, 8);
        return b;
    }

    public static IEnumerable<object[]> BadFiles()
    {
        const string ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        yield return new object[] { "tiny", new byte[] { 1, 2, 3 }, "shorter than the 8-byte" };
        yield return new object[] { "cap", Craft(ok, 8, 200_000_000), "exceeds the 100000000-byte limit" };
        yield return new object[] { "past-eof", Craft(ok, 8, 5000), "runs past the end of the file" };
        yield return new object[] { "utf8", Craft(new byte[] { (byte)'{', (byte)'"', 0xff, 0xfe, (byte)'"', (byte)':', (byte)'1', (byte)'}' }, 0), "not valid UTF-8" };
        yield return new object[] { "json", Craft("{\"a\":{\"dtype\":", 0), "not valid JSON" };
        yield return new object[] { "array", Craft("[1,2,3]", 0), "not a JSON object" };
        yield return new object[] { "dtype", Craft("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2), "unknown or unsupported dtype 'F8_E4M3'" };
        yield return new object[] { "overlap", Craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12), "overlaps" };
        yield return new object[] { "gap", Craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12), "leaving a gap" };
        yield return new object[] { "out-of-range", Craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8), "runs past the data section" };
        yield return new object[] { "trailing", Craft(ok, 12), "cover 8 bytes but the data section holds 12" };
        yield return new object[] { "count", Craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8), "needs 12 bytes, data_offsets give 8" };
        yield return new object[] { "overflow", Craft("{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8), "overflows" };
        yield return new object[] { "negative", Craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8), "not a non-negative 64-bit integer" };
        yield return new object[] { "reversed", Craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8), "end before they begin" };
        yield return new object[] { "duplicate", Craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8), "names 'a' twice" };
        yield return new object[] { "meta", Craft("{\"__metadata__\":{\"x\":1}}", 0), "is not a string" };
        yield return new object[] { "field", Craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"evil\":1}}", 4), "unknown field 'evil'" };
        yield return new object[] { "missing", Craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4), "needs dtype, shape and data_offsets" };
        yield return new object[] { "bool", Craft("{\"a\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2).Concat(Array.Empty<byte>()).ToArray() is var b ? SetLast(b, 7) : b, "neither 0 nor 1" };
    }

    private static byte[] SetLast(byte[] b, byte v) { b[^1] = v; return b; }

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void MaliciousFilesGiveTheirError(string name, byte[] content, string expected)
    {
        using var dir = new TempDir();
        var path = dir[name + ".safetensors"];
        File.WriteAllBytes(path, content);
        long live = Tensor.TotalCount;
        var e = Assert.Throws<CheckpointException>(() => Safetensors.Read(path).Dispose());
        Assert.Contains(expected, e.Message);
        Assert.StartsWith(path, e.Message);
        Assert.True(Tensor.TotalCount <= live, "a failed read must not leak tensors");
    }

    [Fact]
    public void MissingFileIsAClearError()
    {
        var e = Assert.Throws<CheckpointException>(() => Safetensors.Read("/nonexistent/x.safetensors"));
        Assert.Contains("file not found", e.Message);
    }
}
