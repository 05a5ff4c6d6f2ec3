using Google.Protobuf;

namespace DeepLabTorch.Export.Onnx;

/// <summary>onnx.proto's TensorProto.DataType values that we emit.</summary>
public enum OnnxType
{
    Float = 1,
    UInt8 = 2,
    Int8 = 3,
    Int32 = 6,
    Int64 = 7,
    Bool = 9,
    Float16 = 10,
    Double = 11,
}

/// <summary>One dimension of a graph input/output: a fixed size or a named symbolic one.</summary>
public readonly record struct OnnxDim(long? Value, string? Param)
{
    public static implicit operator OnnxDim(long v) => new(v, null);
    public static implicit operator OnnxDim(string p) => new(null, p);
}

/// <summary>
/// The few onnx.proto messages the exporter needs, written with protobuf's wire format by hand
/// (field numbers from the published onnx.proto). Repeated scalars are written unpacked, which
/// every proto2 and proto3 parser accepts.
/// </summary>
internal static class OnnxProto
{
    public static byte[] Message(Action<CodedOutputStream> write)
    {
        using var ms = new MemoryStream();
        var o = new CodedOutputStream(ms, leaveOpen: true);
        write(o);
        o.Flush();
        return ms.ToArray();
    }

    public static void Sub(CodedOutputStream o, int field, byte[] message)
    {
        o.WriteTag(field, WireFormat.WireType.LengthDelimited);
        o.WriteBytes(ByteString.CopyFrom(message));
    }

    public static void Str(CodedOutputStream o, int field, string value)
    {
        o.WriteTag(field, WireFormat.WireType.LengthDelimited);
        o.WriteString(value);
    }

    public static void Int(CodedOutputStream o, int field, long value)
    {
        o.WriteTag(field, WireFormat.WireType.Varint);
        o.WriteInt64(value);
    }

    // TensorProto: dims=1, data_type=2, name=8, raw_data=9
    public static byte[] Tensor(string name, OnnxType type, long[] dims, byte[] raw) => Message(o =>
    {
        foreach (var d in dims) Int(o, 1, d);
        Int(o, 2, (int)type);
        Str(o, 8, name);
        o.WriteTag(9, WireFormat.WireType.LengthDelimited);
        o.WriteBytes(ByteString.CopyFrom(raw));
    });

    // ValueInfoProto: name=1, type=2 → TypeProto.tensor_type=1 → elem_type=1, shape=2 → TensorShapeProto.dim=1 → dim_value=1 | dim_param=2
    public static byte[] ValueInfo(string name, OnnxType type, OnnxDim[] dims) => Message(o =>
    {
        Str(o, 1, name);
        var shape = Message(s =>
        {
            foreach (var d in dims)
                Sub(s, 1, Message(dm =>
                {
                    if (d.Value is long v) Int(dm, 1, v);
                    else Str(dm, 2, d.Param ?? throw new ArgumentException("a dimension needs a value or a name"));
                }));
        });
        var tensorType = Message(t => { Int(t, 1, (int)type); Sub(t, 2, shape); });
        Sub(o, 2, Message(t => Sub(t, 1, tensorType)));
    });

    // AttributeProto: name=1, f=2, i=3, s=4, t=5, floats=7, ints=8, type=20 (FLOAT=1, INT=2, STRING=3, TENSOR=4, FLOATS=6, INTS=7)
    public static byte[] AttrInt(string name, long v) => Message(o => { Str(o, 1, name); Int(o, 3, v); Int(o, 20, 2); });
    public static byte[] AttrFloat(string name, float v) => Message(o =>
    {
        Str(o, 1, name);
        o.WriteTag(2, WireFormat.WireType.Fixed32);
        o.WriteFloat(v);
        Int(o, 20, 1);
    });
    public static byte[] AttrString(string name, string v) => Message(o => { Str(o, 1, name); Str(o, 4, v); Int(o, 20, 3); });
    public static byte[] AttrInts(string name, long[] v) => Message(o => { Str(o, 1, name); foreach (var x in v) Int(o, 8, x); Int(o, 20, 7); });
    public static byte[] AttrTensor(string name, byte[] tensor) => Message(o => { Str(o, 1, name); Sub(o, 5, tensor); Int(o, 20, 4); });

    // NodeProto: input=1, output=2, name=3, op_type=4, attribute=5
    public static byte[] Node(string opType, string name, IEnumerable<string> inputs, IEnumerable<string> outputs, IEnumerable<byte[]> attributes) => Message(o =>
    {
        foreach (var i in inputs) Str(o, 1, i);
        foreach (var x in outputs) Str(o, 2, x);
        Str(o, 3, name);
        Str(o, 4, opType);
        foreach (var a in attributes) Sub(o, 5, a);
    });
}
