using System.Runtime.InteropServices;
using DeepLabTorch.Export.Onnx;
using DeepLabTorch.Export.Onnx.Proto;

namespace DeepLabTorch.Export.Quantization;

/// <summary>
/// A float32 graph made float16 inside: every float32 initializer becomes float16 (round to nearest even), Casts
/// to float32 cast to float16 instead, a float32 input is cast to float16 as it enters and a float32 output back to
/// float32 as it leaves, so callers feed and read float32 as before.
/// </summary>
internal static class Float16Rewriter
{
    public static void Rewrite(GraphProto g)
    {
        foreach (var t in g.Initializer.Where(t => t.DataType == (int)OnnxType.Float))
        {
            var values = MemoryMarshal.Cast<byte, float>(t.RawData.Span);
            var halves = new Half[values.Length];
            for (int i = 0; i < values.Length; i++) halves[i] = (Half)values[i];
            t.DataType = (int)OnnxType.Float16;
            t.RawData = Google.Protobuf.ByteString.CopyFrom(MemoryMarshal.AsBytes<Half>(halves));
        }
        foreach (var n in g.Node.Where(n => n.OpType == "Cast"))
            foreach (var a in n.Attribute.Where(a => a.Name == "to" && a.I == (long)OnnxType.Float))
                a.I = (long)OnnxType.Float16;
        var head = new List<NodeProto>();
        foreach (var input in g.Input.Where(IsFloat))
        {
            var half = input.Name + "_fp16";
            foreach (var n in g.Node)
                for (int k = 0; k < n.Input.Count; k++)
                    if (n.Input[k] == input.Name) n.Input[k] = half;
            head.Add(CastNode(input.Name, half, OnnxType.Float16));
        }
        foreach (var output in g.Output.Where(IsFloat))
        {
            var half = output.Name + "_fp16";
            foreach (var n in g.Node)
                for (int k = 0; k < n.Output.Count; k++)
                    if (n.Output[k] == output.Name) n.Output[k] = half;
            g.Node.Add(CastNode(half, output.Name, OnnxType.Float));
        }
        for (int i = head.Count - 1; i >= 0; i--) g.Node.Insert(0, head[i]);
    }

    private static bool IsFloat(ValueInfoProto v) => v.Type.TensorType.ElemType == (int)OnnxType.Float;

    private static NodeProto CastNode(string input, string output, OnnxType to)
    {
        var n = new NodeProto { OpType = "Cast", Name = output + "_cast" };
        n.Input.Add(input);
        n.Output.Add(output);
        n.Attribute.Add(OnnxGraphBuilder.AttrInt("to", (long)to));
        return n;
    }
}
