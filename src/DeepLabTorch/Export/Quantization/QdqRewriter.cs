using System.Runtime.InteropServices;
using DeepLabTorch.Export.Onnx;
using DeepLabTorch.Export.Onnx.Proto;

namespace DeepLabTorch.Export.Quantization;

/// <summary>
/// Rewrites a float graph into a QDQ graph by a plan and the calibrated ranges: each quantised unit's input goes
/// through QuantizeLinear → DequantizeLinear (once per value, shared by its consumers); Conv weights become int8
/// initializers per output channel and biases int32, each read through a DequantizeLinear on axis 0; each unit's
/// output is quantised with its own range and the absorbed activation dropped. Nodes outside the plan keep their
/// float inputs, now the dequantised values.
/// </summary>
internal sealed class QdqRewriter
{
    private readonly GraphProto _g;
    private readonly QdqPlan _plan;
    private readonly IReadOnlyDictionary<string, (float Min, float Max)> _ranges;
    private readonly ActivationType _type;
    private readonly Dictionary<string, TensorProto> _init;
    private readonly List<NodeProto> _nodes = new();
    private readonly List<TensorProto> _newInit = new();
    /// <summary>A quantised value's dequantised name and its scale.</summary>
    private readonly Dictionary<string, (string Dq, float Scale)> _quantised = new(StringComparer.Ordinal);
    private readonly HashSet<string> _replacedInit = new(StringComparer.Ordinal);
    private int _counter;

    private QdqRewriter(GraphProto g, QdqPlan plan, IReadOnlyDictionary<string, (float, float)> ranges, ActivationType type)
    {
        _g = g;
        _plan = plan;
        _ranges = ranges;
        _type = type;
        _init = g.Initializer.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    /// <summary>The graph, rewritten in place.</summary>
    public static void Rewrite(GraphProto g, QdqPlan plan, IReadOnlyDictionary<string, (float, float)> ranges, ActivationType type) =>
        new QdqRewriter(g, plan, ranges, type).Run();

    private (int QMin, int QMax, OnnxType Type) Activation => _type == ActivationType.UInt8 ? (0, 255, OnnxType.UInt8) : (-128, 127, OnnxType.Int8);

    private void Run()
    {
        for (int i = 0; i < _g.Node.Count; i++)
        {
            if (_plan.Absorbed.Contains(i)) continue;
            var n = _g.Node[i].Clone();
            for (int k = 0; k < n.Input.Count; k++)
                if (_quantised.TryGetValue(n.Input[k], out var q)) n.Input[k] = q.Dq;
            if (_plan.Units.ContainsKey(i)) QuantiseUnit(i, n);
            else _nodes.Add(n);
        }
        _g.Node.Clear();
        _g.Node.AddRange(_nodes);
        // The float weights now quantised, and the Clip bounds of absorbed ReLU6s, are no longer read by any node.
        var read = _nodes.SelectMany(n => n.Input).ToHashSet(StringComparer.Ordinal);
        var kept = _g.Initializer.Where(t => !_replacedInit.Contains(t.Name) && read.Contains(t.Name)).ToList();
        _g.Initializer.Clear();
        _g.Initializer.AddRange(kept);
        _g.Initializer.AddRange(_newInit);
    }

    private void QuantiseUnit(int index, NodeProto n)
    {
        var original = _g.Node[index];
        // Inputs: the activation(s) through Q/DQ; a Conv's weight and bias as integer initializers.
        var x = Dequantised(original.Input[0]);
        n.Input[0] = x.Dq;
        if (n.OpType == "Add") n.Input[1] = Dequantised(original.Input[1]).Dq;
        else QuantiseConvParameters(n, x.Scale);
        _nodes.Add(n);
        // Output: quantised with the range after the absorbed activation, known from here on by its dequantised name.
        var output = _plan.UnitOutput(_g, index);
        _quantised[output] = QuantiseDequantise(n.Output[0], output);
    }

    /// <summary>The dequantised form of a float value, adding its Q/DQ pair on first use.</summary>
    private (string Dq, float Scale) Dequantised(string value)
    {
        if (_quantised.TryGetValue(value, out var q)) return q;
        return _quantised[value] = QuantiseDequantise(value, value);
    }

    /// <summary>QuantizeLinear → DequantizeLinear on `input`, with the calibrated range of `rangeOf`.</summary>
    private (string Dq, float Scale) QuantiseDequantise(string input, string rangeOf)
    {
        if (!_ranges.TryGetValue(rangeOf, out var r)) throw new InvalidOperationException($"no calibrated range for '{rangeOf}'");
        var (qmin, qmax, type) = Activation;
        var (scale, zp) = QuantMath.Asymmetric(r.Min, r.Max, qmin, qmax);
        var s = Add(Fresh(rangeOf + "_scale"), OnnxType.Float, Array.Empty<long>(), MemoryMarshal.AsBytes<float>(new[] { scale }).ToArray());
        var z = Add(Fresh(rangeOf + "_zero_point"), type, Array.Empty<long>(), new[] { unchecked((byte)zp) });
        var quantised = Emit("QuantizeLinear", new[] { input, s, z }, Fresh(rangeOf + "_quantized"));
        var dq = Emit("DequantizeLinear", new[] { quantised, s, z }, Fresh(rangeOf + "_dequantized"));
        return (dq, scale);
    }

    /// <summary>The Conv's weight (int8 per output channel) and bias (int32), each through a DequantizeLinear on axis 0.</summary>
    private void QuantiseConvParameters(NodeProto conv, float inputScale)
    {
        var w = FloatInitializer(conv.Input[1]);
        int channels = (int)w.Tensor.Dims[0];
        var (scales, values) = QuantMath.PerChannelSymmetric(w.Values, channels);
        conv.Input[1] = PerChannelDq(conv.Name + ".weight", w.Tensor.Dims.ToArray(), MemoryMarshal.AsBytes<sbyte>(values).ToArray(), OnnxType.Int8, scales, new byte[channels]);
        if (conv.Input.Count < 3) return;
        var b = FloatInitializer(conv.Input[2]);
        var (bScales, bValues) = QuantMath.Bias(b.Values, inputScale, scales);
        conv.Input[2] = PerChannelDq(conv.Name + ".bias", new long[] { channels }, MemoryMarshal.AsBytes<int>(bValues).ToArray(), OnnxType.Int32, bScales, new byte[channels * 4]);
    }

    private string PerChannelDq(string name, long[] dims, byte[] raw, OnnxType type, float[] scales, byte[] zeroPoints)
    {
        var q = Add(Fresh(name + "_quantized"), type, dims, raw);
        var s = Add(Fresh(name + "_scale"), OnnxType.Float, new long[] { scales.Length }, MemoryMarshal.AsBytes<float>(scales).ToArray());
        var z = Add(Fresh(name + "_zero_point"), type, new long[] { scales.Length }, zeroPoints);
        return Emit("DequantizeLinear", new[] { q, s, z }, Fresh(name + "_dequantized"), OnnxGraphBuilder.AttrInt("axis", 0));
    }

    private (TensorProto Tensor, float[] Values) FloatInitializer(string name)
    {
        if (!_init.TryGetValue(name, out var t) || t.DataType != (int)OnnxType.Float)
            throw new InvalidOperationException($"'{name}' is not a float32 initializer");
        _replacedInit.Add(name);
        return (t, MemoryMarshal.Cast<byte, float>(t.RawData.Span).ToArray());
    }

    private string Add(string name, OnnxType type, long[] dims, byte[] raw)
    {
        _newInit.Add(OnnxGraphBuilder.Tensor(name, type, dims, raw));
        return name;
    }

    private string Emit(string op, string[] inputs, string output, AttributeProto? attr = null)
    {
        var node = new NodeProto { OpType = op, Name = output + "_node" };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        if (attr is not null) node.Attribute.Add(attr);
        _nodes.Add(node);
        return output;
    }

    private string Fresh(string hint) => $"{hint}_{_counter++}";
}
