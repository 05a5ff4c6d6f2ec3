using DeepLabTorch.Export.Onnx;
using DeepLabTorch.Export.Onnx.Proto;
using Google.Protobuf;
using Xunit;
using static TorchSharp.torch;
using AttributeType = DeepLabTorch.Export.Onnx.Proto.AttributeProto.Types.AttributeType;
using DataLocation = DeepLabTorch.Export.Onnx.Proto.TensorProto.Types.DataLocation;
using Dimension = DeepLabTorch.Export.Onnx.Proto.TensorShapeProto.Types.Dimension;

namespace DeepLabTorch.Tests.Export.Onnx;

/// <summary>
/// The messages generated from Export/Onnx/onnx.proto: their bytes against ones worked out by hand from
/// ONNX's published field numbers, the data types and external-data fields as Debian's python3-onnx
/// reads them, and an exported model read back through the generated parser.
/// </summary>
public class OnnxMessagesTests
{
    private static string Hex(IMessage m) => Convert.ToHexString(m.ToByteArray());

    [Fact]
    public void TheMessagesHaveOnnxFieldNumbersAndProto2Presence()
    {
        // OperatorSetIdProto: domain=1 (the empty default domain still written), version=2.
        Assert.Equal("0A00100D", Hex(new OperatorSetIdProto { Domain = "", Version = 13 }));
        // AttributeProto: name=1 "keepdims", i=3 with value 0 (kept: proto2), type=20 (tag 0xA0 0x01) INT=2.
        Assert.Equal("0A086B65657064696D73" + "1800" + "A00102", Hex(new AttributeProto { Name = "keepdims", Type = AttributeType.Int, I = 0 }));
        // TensorShapeProto.Dimension: dim_value=1, dim_param=2.
        Assert.Equal("0803", Hex(new Dimension { DimValue = 3 }));
        Assert.Equal("12014E", Hex(new Dimension { DimParam = "N" }));
        // TensorProto: dims=1, data_type=2 (FLOAT=1), name=8, raw_data=9 (1.0f and 2.0f little-endian).
        var raw = new TensorProto { Name = "w", DataType = (int)OnnxType.Float, RawData = ByteString.CopyFrom(0, 0, 0x80, 0x3F, 0, 0, 0, 0x40) };
        raw.Dims.Add(2);
        Assert.Equal("08021001" + "420177" + "4A080000803F00000040", Hex(raw));
        // int64_data=7 is packed as in onnx.proto: one length-delimited run, 300 = AC 02.
        var packed = new TensorProto { Name = "e" };
        packed.Int64Data.Add(new long[] { 1, 300 });
        Assert.Equal("3A0301AC02" + "420165", Hex(packed));
        // external_data=13 (StringStringEntryProto key=1, value=2), data_location=14 (EXTERNAL=1).
        var external = new TensorProto { Name = "x", DataLocation = DataLocation.External };
        external.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = "w.bin" });
        Assert.Equal("420178" + "6A11" + "0A086C6F636174696F6E" + "1205772E62696E" + "7001", Hex(external));
    }

    private static TensorProto Initializer(string name, OnnxType type, byte[] raw, long count)
    {
        var t = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(raw) };
        t.Dims.Add(count);
        return t;
    }

    [LinuxFact(LinuxOnly.Python)]
    public void PythonOnnxReadsTheQuantisationTypesAndExternalData()
    {
        using var dir = new TempDir();
        var graph = new GraphProto { Name = "tensors" };
        graph.Initializer.Add(Initializer("i8", OnnxType.Int8, new byte[] { 0x80, 0xFF, 0x00, 0x7F }, 4));
        graph.Initializer.Add(Initializer("u8", OnnxType.UInt8, new byte[] { 0, 1, 255 }, 3));
        // float16 1.0 = 0x3C00, -2.5 = 0xC100, 65504 (the largest) = 0x7BFF; bfloat16 1.0 = 0x3F80, -2.5 = 0xC020,
        // 3.140625 = 0x4049 (float32 0x40490000); all little-endian.
        graph.Initializer.Add(Initializer("f16", OnnxType.Float16, new byte[] { 0x00, 0x3C, 0x00, 0xC1, 0xFF, 0x7B }, 3));
        graph.Initializer.Add(Initializer("bf16", OnnxType.BFloat16, new byte[] { 0x80, 0x3F, 0x20, 0xC0, 0x49, 0x40 }, 3));
        // 0.5, -1 and 2 as float32 in w.bin after 4 bytes that are not part of the tensor.
        File.WriteAllBytes(dir["w.bin"], new byte[] { 0xEE, 0xEE, 0xEE, 0xEE, 0, 0, 0, 0x3F, 0, 0, 0x80, 0xBF, 0, 0, 0, 0x40 });
        var ext = new TensorProto { Name = "ext", DataType = (int)OnnxType.Float, DataLocation = DataLocation.External };
        ext.Dims.Add(3);
        foreach (var (k, v) in new[] { ("location", "w.bin"), ("offset", "4"), ("length", "12") })
            ext.ExternalData.Add(new StringStringEntryProto { Key = k, Value = v });
        graph.Initializer.Add(ext);
        foreach (var t in graph.Initializer)
        {
            var node = new NodeProto { OpType = "Identity", Name = t.Name + "_node" };
            node.Input.Add(t.Name);
            node.Output.Add(t.Name + "_out");
            graph.Node.Add(node);
            var shape = new TensorShapeProto();
            shape.Dim.Add(new Dimension { DimValue = t.Dims[0] });
            graph.Output.Add(new ValueInfoProto { Name = t.Name + "_out", Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = t.DataType, Shape = shape } } });
        }
        var model = new ModelProto { IrVersion = OnnxGraphBuilder.IrVersion, ProducerName = "test", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = OnnxGraphBuilder.Opset });
        File.WriteAllBytes(dir["m.onnx"], model.ToByteArray());

        var lines = Python.Run("onnx_tensors.py", dir["m.onnx"]).Trim().Split('\n');
        Assert.Equal(new[]
        {
            "i8 INT8 [4] DEFAULT -128 -1 0 127",
            "u8 UINT8 [3] DEFAULT 0 1 255",
            "f16 FLOAT16 [3] DEFAULT 1.0 -2.5 65504.0",
            "bf16 BFLOAT16 [3] DEFAULT 1.0 -2.5 3.140625",
            "ext FLOAT [3] EXTERNAL(location=w.bin,offset=4,length=12) 0.5 -1.0 2.0",
        }, lines);
    }

    [Fact]
    public void AnExportedModelReadsBackThroughTheGeneratedParser()
    {
        using var dir = new TempDir();
        manual_seed(3);
        using var net = new MiniDeepLab();
        net.eval();
        var g = new OnnxGraphBuilder("mini");
        var x = g.Input("input", OnnxType.Float, "N", 3L, "H", "W");
        g.Output(g.ArgMax(net.Export(g, x), 1), "labels", OnnxType.Int64, "N", "H", "W");
        g.Save(dir["m.onnx"]);

        var m = ModelProto.Parser.ParseFrom(File.ReadAllBytes(dir["m.onnx"]));
        Assert.Equal(7, m.IrVersion);
        Assert.Equal("DeepLabTorch", m.ProducerName);
        var opset = Assert.Single(m.OpsetImport);
        Assert.True(opset.HasDomain);
        Assert.Equal(("", 13L), (opset.Domain, opset.Version));
        Assert.Equal("mini", m.Graph.Name);
        Assert.Equal(g.NodeCount, m.Graph.Node.Count);
        var input = Assert.Single(m.Graph.Input);
        Assert.Equal((int)OnnxType.Float, input.Type.TensorType.ElemType);
        Assert.Equal(new[] { "N", "3", "H", "W" }, input.Type.TensorType.Shape.Dim.Select(d => d.HasDimValue ? d.DimValue.ToString(System.Globalization.CultureInfo.InvariantCulture) : d.DimParam));
        Assert.Equal("labels", Assert.Single(m.Graph.Output).Name);
        // keepdims=0 is present with its zero, as ArgMax's default (1) would keep the class axis.
        var keepdims = Assert.Single(m.Graph.Node.Single(n => n.OpType == "ArgMax").Attribute, a => a.Name == "keepdims");
        Assert.Equal(AttributeType.Int, keepdims.Type);
        Assert.True(keepdims.HasI);
        Assert.Equal(0, keepdims.I);
        // The classifier's weight: [3,16,1,1] float32 as raw little-endian data.
        var weight = m.Graph.Initializer.Single(t => t.Dims.SequenceEqual(new long[] { 3, 16, 1, 1 }));
        Assert.Equal((int)OnnxType.Float, weight.DataType);
        var expected = net.classifier.weight.data<float>().ToArray();
        var actual = new float[expected.Length];
        Buffer.BlockCopy(weight.RawData.ToByteArray(), 0, actual, 0, weight.RawData.Length);
        Assert.Equal(expected, actual);
    }
}
