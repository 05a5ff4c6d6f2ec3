using System.IO.Compression;
using System.Text;
using System.Text.Json;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Checkpoints.Pth;
using DeepLabTorch.Extensions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Checkpoints;

public class PthImportTests : IClassFixture<PthFixture>
{
    private readonly PthFixture _files;
    public PthImportTests(PthFixture files) { _files = files; }

    [LinuxTheory(LinuxOnly.Python)]
    [InlineData("bare.pth", "pytorch-state-dict")]
    [InlineData("reference.pth.tar", "pytorch-reference")]
    [InlineData("port.pth", "pytorch-port")]
    public void EachCheckpointShapeLoadsAndGivesPyTorchsLogits(string file, string source)
    {
        var sd = WeightFiles.LoadStateDict(_files[file], out var info);
        try
        {
            Assert.Equal(source, info!.Source);
            Assert.Equal(new[] { "backbone.0.weight", "backbone.1.weight", "backbone.1.bias", "backbone.1.running_mean", "backbone.1.running_var",
                "backbone.1.num_batches_tracked", "classifier.weight", "classifier.bias" }, sd.Keys);
            Assert.Equal(17L, sd["backbone.1.num_batches_tracked"].item<long>());
            using var net = new TinyNet(5);
            net.load_state_dict(sd);
            net.eval();
            using var x = tensor(Python.ReadFloats(_files["input.bin"]), new long[] { 1, 3, 6, 7 });
            using var y = net.forward(x);
            var expected = Python.ReadFloats(_files["logits.bin"]);
            var got = y.ToArray<float>();
            Assert.Equal(expected.Length, got.Length);
            for (int i = 0; i < got.Length; i++) Assert.True(Math.Abs(expected[i] - got[i]) <= 1e-5, $"logit {i}: {got[i]} vs PyTorch {expected[i]}");
        }
        finally
        {
            foreach (var t in sd.Values) t.Dispose();
        }
        if (source == "pytorch-reference")
        {
            Assert.Equal(7, info.Epoch);
            Assert.Equal(0.731, info.BestMIoU, 12); // a numpy float64 in the pickle
        }
        if (source == "pytorch-port")
        {
            Assert.Equal(1234, info.Iteration);
            Assert.Equal(0.65, info.BestMIoU, 12);
        }
    }

    [LinuxFact(LinuxOnly.Python)]
    public void StridedSharedAndTypedStoragesMatchPyTorch()
    {
        using var archive = PthReader.Open(_files["views.pth"]);
        var top = Assert.IsType<PickleDict>(archive.Value);
        using var json = JsonDocument.Parse(File.ReadAllText(_files["views.json"]));
        foreach (var e in json.RootElement.EnumerateObject())
        {
            Assert.True(top.TryGet(e.Name, out var v), e.Name);
            using var t = archive.Materialize(Assert.IsType<PickleTensor>(v), e.Name);
            var shape = e.Value.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).ToArray();
            Assert.Equal(shape, t.shape);
            var expected = e.Value.GetProperty("values").EnumerateArray().Select(x => x.GetDouble()).ToArray();
            var got = t.dtype == ScalarType.Int64 ? t.ToArray<long>().Select(x => (double)x).ToArray() : t.to(ScalarType.Float64).ToArray<double>();
            Assert.Equal(expected, got);
        }
        Assert.True(top.TryGet("long", out var l));
        Assert.Equal(ScalarType.Int64, ((PickleTensor)l!).Storage.Dtype);
        Assert.True(top.TryGet("bf16", out var bf));
        Assert.Equal(ScalarType.BFloat16, ((PickleTensor)bf!).Storage.Dtype);
        Assert.True(top.TryGet("param", out var p));
        Assert.True(((PickleTensor)p!).RequiresGrad);
        // transposed, offset_rows, strided_cols and shared_whole share one storage.
        Assert.True(top.TryGet("transposed", out var a));
        Assert.True(top.TryGet("offset_rows", out var rows));
        Assert.Same(((PickleTensor)a!).Storage, ((PickleTensor)rows!).Storage);
    }

    [LinuxFact(LinuxOnly.Python)]
    public void AForeignGlobalIsRefusedByNameAndNothingRuns()
    {
        var e = Assert.Throws<CheckpointException>(() => WeightFiles.LoadStateDict(_files["evil.pth"], out _));
        Assert.Contains("refused global 'posix.system'", e.Message);
        Assert.False(File.Exists(_files["pwned"]));
    }

    [LinuxFact(LinuxOnly.Python)]
    public void ATruncatedZipIsReported()
    {
        var bytes = File.ReadAllBytes(_files["bare.pth"]);
        var path = _files["truncated.pth"];
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<CheckpointException>(() => WeightFiles.LoadStateDict(path, out _));
        Assert.Contains("truncated or corrupt", e.Message);
    }

    [LinuxFact(LinuxOnly.Python)]
    public void AWrongStorageSizeIsReported()
    {
        var path = _files["short-storage.pth"];
        File.Copy(_files["bare.pth"], path, true);
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Update))
        {
            var entry = zip.Entries.Single(x => x.FullName.EndsWith("/data/1", StringComparison.Ordinal));
            var name = entry.FullName;
            entry.Delete();
            using var s = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
            s.Write(new byte[12]); // a 4-float storage cut to 3 floats
        }
        var e = Assert.Throws<CheckpointException>(() => WeightFiles.LoadStateDict(path, out _));
        Assert.Contains("storage '1' holds 12 bytes, but 4 Float32 elements need 16", e.Message);
    }

    [LinuxFact(LinuxOnly.Python)]
    public void TheLegacyFormatIsRefusedClearly()
    {
        var e = Assert.Throws<CheckpointException>(() => WeightFiles.LoadStateDict(_files["legacy.pth"], out _));
        Assert.Contains("legacy (pre-1.6) torch.save format", e.Message);
    }

    // ------------------------------------------------------------------ hand-made pickles
    private static byte[] Pickle(params object[] parts)
    {
        var ms = new MemoryStream();
        foreach (var p in parts)
        {
            if (p is string s) ms.Write(Encoding.ASCII.GetBytes(s));
            else if (p is byte b) ms.WriteByte(b);
            else if (p is byte[] bs) ms.Write(bs);
        }
        return ms.ToArray();
    }

    [LinuxFact(LinuxOnly.Python)]
    public void TheUnpicklerReadsPlainDataAndRefusesTheRest()
    {
        // {'a': [1, -2, 300, 2**40, 1.5, True, None, 'é'], 'b': (1, 2)} in protocol 2
        var ok = Pickle((byte)0x80, (byte)2, "}", "(", (byte)0x8c, (byte)1, "a", "]", "(",
            "K", (byte)1, "J", new byte[] { 0xfe, 0xff, 0xff, 0xff }, "M", new byte[] { 44, 1 },
            (byte)0x8a, (byte)6, new byte[] { 0, 0, 0, 0, 0, 1 }, "G", new byte[] { 0x3f, 0xf8, 0, 0, 0, 0, 0, 0 },
            (byte)0x88, "N", "X", new byte[] { 2, 0, 0, 0, 0xc3, 0xa9 }, "e",
            (byte)0x8c, (byte)1, "b", "K", (byte)1, "K", (byte)2, (byte)0x86, "u", ".");
        var (value, _) = Unpickler.Load(ok);
        var d = Assert.IsType<PickleDict>(value);
        Assert.True(d.TryGet("a", out var a));
        Assert.Equal(new object?[] { 1L, -2L, 300L, 1L << 40, 1.5, true, null, "é" }, Assert.IsType<List<object?>>(a));
        Assert.True(d.TryGet("b", out var b));
        Assert.Equal(new object?[] { 1L, 2L }, Assert.IsType<PickleTuple>(b).Items);

        var refusals = new (byte[] bytes, string reason)[]
        {
            (Pickle((byte)0x80, (byte)2, "cbuiltins\neval\n", "."), "refused global 'builtins.eval'"),
            (Pickle((byte)0x80, (byte)2, "ctorch\nload\n", "."), "refused global 'torch.load'"),
            (Pickle((byte)0x80, (byte)2, "ccollections\nOrderedDict\n", ")", (byte)0x81, "."), "NEWOBJ"),
            (Pickle((byte)0x80, (byte)2, "X", new byte[] { 0xff, 0xff, 0xff, 0x7f }, "ab"), "truncated"),
            (Pickle((byte)0x80, (byte)2, "}", "K", (byte)1), "without a STOP"),
            (Pickle((byte)0x80, (byte)2, "h", (byte)3, "."), "memo entry 3"),
            (Pickle((byte)0x80, (byte)2, "s", "."), "stack underflow"),
            (Pickle((byte)0x80, (byte)2, "I1\n."), "opcode 0x49"),
        };
        foreach (var (bytes, reason) in refusals)
        {
            var e = Assert.Throws<InvalidDataException>(() => Unpickler.Load(bytes));
            Assert.Contains(reason, e.Message);
        }
    }
}
