using DataType = DeepLabTorch.Export.Onnx.Proto.TensorProto.Types.DataType;

namespace DeepLabTorch.Export.Onnx;

/// <summary>The element types the exporter emits: onnx.proto's TensorProto.DataType numbers (from onnx.proto itself).</summary>
internal enum OnnxType
{
    Float = (int)DataType.Float,
    UInt8 = (int)DataType.Uint8,
    Int8 = (int)DataType.Int8,
    Int32 = (int)DataType.Int32,
    Int64 = (int)DataType.Int64,
    Bool = (int)DataType.Bool,
    Float16 = (int)DataType.Float16,
    Double = (int)DataType.Double,
    BFloat16 = (int)DataType.Bfloat16,
}

/// <summary>One dimension of a graph input/output: a fixed size or a named symbolic one.</summary>
internal readonly record struct OnnxDim(long? Value, string? Param)
{
    public static implicit operator OnnxDim(long v) => new(v, null);
    public static implicit operator OnnxDim(string p) => new(null, p);
}
