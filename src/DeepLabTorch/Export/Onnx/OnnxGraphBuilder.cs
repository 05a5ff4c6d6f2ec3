using System.Globalization;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;
using TorchSharp.Modules;
using DeepLabTorch.Export.Onnx.Proto;
using Google.Protobuf;
using AttributeType = DeepLabTorch.Export.Onnx.Proto.AttributeProto.Types.AttributeType;

namespace DeepLabTorch.Export.Onnx;

/// <summary>
/// Builds an ONNX model (opset 13, IR version 7) op by op. Every op returns the name of its output
/// value; pass `output` to choose it (e.g. "logits"). Weights become initializers. Enough to express
/// an eval-mode DeepLabV3+: convolutions with BatchNorm folded in, activations, fixed padding, pooling,
/// bilinear resizes whose target size comes from another value's runtime shape, concat, argmax, and
/// the optional uint8 NHWC preprocessing. The messages are onnx.proto's, generated at build time
/// (Export/Onnx/onnx.proto).
/// </summary>
internal sealed class OnnxGraphBuilder
{
    public const int Opset = 13;
    public const int IrVersion = 7;

    private readonly string _graphName;
    private readonly List<NodeProto> _nodes = new();
    private readonly List<TensorProto> _initializers = new();
    private readonly List<ValueInfoProto> _inputs = new();
    private readonly List<ValueInfoProto> _outputs = new();
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly HashSet<string> _nodeNames = new(StringComparer.Ordinal);
    private readonly Dictionary<nn.Module, string> _modulePaths = new(ReferenceEqualityComparer.Instance);
    private int _counter;

    public OnnxGraphBuilder(string graphName = "deeplabv3plus") { _graphName = graphName; }

    public int NodeCount => _nodes.Count;

    private string Fresh(string hint)
    {
        string n;
        do n = $"{hint}_{_counter++.ToString(CultureInfo.InvariantCulture)}"; while (_names.Contains(n));
        _names.Add(n);
        return n;
    }

    private string Claim(string? name, string hint)
    {
        if (name is null) return Fresh(hint);
        if (!_names.Add(name)) throw new ArgumentException($"ONNX value name '{name}' is used twice");
        return name;
    }

    private string Node(string op, string[] inputs, IEnumerable<AttributeProto>? attrs = null, string? output = null, string? nodeName = null)
    {
        var outName = Claim(output, op.ToLowerInvariant());
        // A module used twice (none is today) keeps its path on its first node only: node names stay unique.
        var node = new NodeProto { OpType = op, Name = nodeName is not null && _nodeNames.Add(nodeName) ? nodeName : outName + "_node" };
        node.Input.AddRange(inputs);
        node.Output.Add(outName);
        if (attrs is not null) node.Attribute.AddRange(attrs);
        _nodes.Add(node);
        return outName;
    }

    // ------------------------------------------------------------------ messages
    // proto2: a set field is written even at its default, so an INT attribute of 0 keeps its value.
    internal static AttributeProto AttrInt(string name, long v) => new() { Name = name, Type = AttributeType.Int, I = v };
    private static AttributeProto AttrString(string name, string v) => new() { Name = name, Type = AttributeType.String, S = ByteString.CopyFromUtf8(v) };
    private static AttributeProto AttrInts(string name, long[] v)
    {
        var a = new AttributeProto { Name = name, Type = AttributeType.Ints };
        a.Ints.AddRange(v);
        return a;
    }

    /// <summary>A tensor whose little-endian bytes the builder owns from here on (wrapped, not copied).</summary>
    internal static TensorProto Tensor(string name, OnnxType type, long[] dims, byte[] raw)
    {
        var t = new TensorProto { Name = name, DataType = (int)type, RawData = UnsafeByteOperations.UnsafeWrap(raw) };
        t.Dims.AddRange(dims);
        return t;
    }

    internal static ValueInfoProto ValueInfo(string name, OnnxType type, OnnxDim[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d.Value is long v
                ? new TensorShapeProto.Types.Dimension { DimValue = v }
                : new TensorShapeProto.Types.Dimension { DimParam = d.Param ?? throw new ArgumentException($"a dimension of '{name}' needs a value or a name") });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }

    // ------------------------------------------------------------------ graph interface
    public string Input(string name, OnnxType type, params OnnxDim[] dims)
    {
        Claim(name, name);
        _inputs.Add(ValueInfo(name, type, dims));
        return name;
    }

    /// <summary>Declares a graph output; a value with another name is renamed through Identity.</summary>
    public string Output(string value, string name, OnnxType type, params OnnxDim[] dims)
    {
        if (value != name) value = Node("Identity", new[] { value }, output: name);
        _outputs.Add(ValueInfo(name, type, dims));
        return name;
    }

    // ------------------------------------------------------------------ constants
    /// <summary>A float32 initializer from a tensor (copied to CPU, contiguous).</summary>
    public unsafe string Initializer(torch.Tensor t, string? name = null)
    {
        using var scope = torch.NewDisposeScope();
        var c = t.detach().to(ScalarType.Float32, torch.CPU).contiguous();
        var raw = new byte[c.numel() * 4];
        if (raw.Length > 0) new ReadOnlySpan<byte>((void*)c.DataPtr(), raw.Length).CopyTo(raw);
        var n = Claim(name, "w");
        _initializers.Add(Tensor(n, OnnxType.Float, c.shape, raw));
        return n;
    }

    public string ConstFloats(float[] values, long[]? shape = null)
    {
        var raw = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, raw, 0, raw.Length);
        var n = Fresh("cf");
        _initializers.Add(Tensor(n, OnnxType.Float, shape ?? new long[] { values.Length }, raw));
        return n;
    }

    public string ConstInt64s(long[] values, long[]? shape = null)
    {
        var raw = new byte[values.Length * 8];
        Buffer.BlockCopy(values, 0, raw, 0, raw.Length);
        var n = Fresh("ci");
        _initializers.Add(Tensor(n, OnnxType.Int64, shape ?? new long[] { values.Length }, raw));
        return n;
    }

    public string ConstScalar(float value) => ConstFloats(new[] { value }, Array.Empty<long>());

    // ------------------------------------------------------------------ convolutions
    /// <summary>
    /// Names every Conv node after its module's state_dict path (e.g. "decoder.last_conv.8"), so the quantiser's
    /// log and --keep-float speak of layers, not of generated value names.
    /// </summary>
    public void NameModulesOf(nn.Module root)
    {
        foreach (var (path, module) in root.named_modules())
            if (path.Length > 0) _modulePaths.TryAdd(module, path);
    }

    private string? PathOf(nn.Module module) => _modulePaths.TryGetValue(module, out var p) ? p : null;

    public string Conv(string x, torch.Tensor weight, torch.Tensor? bias, long[] stride, long[] padding, long[] dilation, long groups, string? output = null, string? nodeName = null)
    {
        var w = weight.shape;
        var inputs = new List<string> { x, Initializer(weight) };
        if (bias is not null) inputs.Add(Initializer(bias));
        return Node("Conv", inputs.ToArray(), new[]
        {
            AttrInts("kernel_shape", new[] { w[2], w[3] }),
            AttrInts("strides", new[] { stride[0], stride[1] }),
            AttrInts("pads", new[] { padding[0], padding[1], padding[0], padding[1] }),
            AttrInts("dilations", new[] { dilation[0], dilation[1] }),
            AttrInt("group", groups),
        }, output, nodeName);
    }

    public string Conv(string x, Conv2d conv, string? output = null) =>
        Conv(x, conv.weight, conv.bias, conv.stride!, conv.padding ?? [0, 0], conv.dilation!, conv.groups, output, PathOf(conv));

    /// <summary>One Conv whose weight and bias absorb an eval-mode BatchNorm that follows the conv.</summary>
    public string ConvBn(string x, Conv2d conv, BatchNorm bn, string? output = null)
    {
        var (w, b) = FoldBatchNorm(conv, bn);
        using (w) using (b)
            return Conv(x, w, b, conv.stride!, conv.padding ?? [0, 0], conv.dilation!, conv.groups, output, PathOf(conv));
    }

    /// <summary>BatchNorm folded into the preceding conv (float32 results the caller disposes); the math is BatchNormFolding's, shared with inference.</summary>
    public static (torch.Tensor weight, torch.Tensor bias) FoldBatchNorm(Conv2d conv, BatchNorm bn) =>
        DeepLabTorch.Models.BatchNormFolding.FoldedParameters(conv, bn, ScalarType.Float32);

    // ------------------------------------------------------------------ elementwise and structure
    public string Relu(string x, string? output = null) => Node("Relu", new[] { x }, output: output);

    /// <summary>Clip with min/max as inputs (opset ≥ 11): ReLU6 is Clip(x, 0, 6).</summary>
    public string Clip(string x, float min, float max, string? output = null) => Node("Clip", new[] { x, ConstScalar(min), ConstScalar(max) }, output: output);
    public string Relu6(string x, string? output = null) => Clip(x, 0, 6, output);

    public string Add(string a, string b, string? output = null) => Node("Add", new[] { a, b }, output: output);
    public string Sub(string a, string b, string? output = null) => Node("Sub", new[] { a, b }, output: output);
    public string Mul(string a, string b, string? output = null) => Node("Mul", new[] { a, b }, output: output);
    public string Div(string a, string b, string? output = null) => Node("Div", new[] { a, b }, output: output);

    public string Concat(IReadOnlyList<string> values, long axis = 1, string? output = null) =>
        Node("Concat", values.ToArray(), new[] { AttrInt("axis", axis) }, output);

    /// <summary>Constant zero padding of H and W as F.pad(x, [left, right, top, bottom]) does.</summary>
    public string Pad(string x, long left, long right, long top, long bottom, float value = 0, string? output = null) =>
        Node("Pad", new[] { x, ConstInt64s(new[] { 0, 0, top, left, 0, 0, bottom, right }), ConstScalar(value) },
            new[] { AttrString("mode", "constant") }, output);

    public string GlobalAveragePool(string x, string? output = null) => Node("GlobalAveragePool", new[] { x }, output: output);

    public string MaxPool(string x, long kernel, long stride, long padding, string? output = null) => Node("MaxPool", new[] { x }, new[]
    {
        AttrInts("kernel_shape", new[] { kernel, kernel }),
        AttrInts("strides", new[] { stride, stride }),
        AttrInts("pads", new[] { padding, padding, padding, padding }),
    }, output);

    public string Shape(string x) => Node("Shape", new[] { x });

    public string Slice(string x, long[] starts, long[] ends, long[] axes) =>
        Node("Slice", new[] { x, ConstInt64s(starts), ConstInt64s(ends), ConstInt64s(axes) });

    /// <summary>
    /// Bilinear resize of x (NCHW) to the spatial size of `like` at run time, as
    /// F.interpolate(x, like.shape[2:], mode="bilinear", align_corners) does.
    /// </summary>
    public string ResizeLike(string x, string like, bool alignCorners, string? output = null)
    {
        var nc = Slice(Shape(x), new long[] { 0 }, new long[] { 2 }, new long[] { 0 });
        var hw = Slice(Shape(like), new long[] { 2 }, new long[] { 4 }, new long[] { 0 });
        var sizes = Concat(new[] { nc, hw }, 0);
        return Node("Resize", new[] { x, "", "", sizes }, new[]
        {
            AttrString("mode", "linear"),
            // pytorch_half_pixel is half_pixel except for outputs of length 1, where PyTorch samples 0.
            AttrString("coordinate_transformation_mode", alignCorners ? "align_corners" : "pytorch_half_pixel"),
        }, output);
    }

    /// <summary>
    /// Nearest-neighbour resize of x (NCHW) to the spatial size of `like` at run time, as PyTorch's
    /// F.interpolate(mode="nearest") picks its source pixel: floor(destination × input / output).
    /// </summary>
    public string ResizeNearestLike(string x, string like, string? output = null)
    {
        var nc = Slice(Shape(x), new long[] { 0 }, new long[] { 2 }, new long[] { 0 });
        var hw = Slice(Shape(like), new long[] { 2 }, new long[] { 4 }, new long[] { 0 });
        var sizes = Concat(new[] { nc, hw }, 0);
        return Node("Resize", new[] { x, "", "", sizes }, new[]
        {
            AttrString("mode", "nearest"),
            AttrString("coordinate_transformation_mode", "asymmetric"),
            AttrString("nearest_mode", "floor"),
        }, output);
    }

    public string Sigmoid(string x, string? output = null) => Node("Sigmoid", new[] { x }, output: output);

    /// <summary>Average pooling with a square kernel, stride and padding, padded zeros counted (PyTorch's default count_include_pad).</summary>
    public string AveragePool(string x, long kernel, long stride, long padding, string? output = null) => Node("AveragePool", new[] { x }, new[]
    {
        AttrInts("kernel_shape", new[] { kernel, kernel }),
        AttrInts("strides", new[] { stride, stride }),
        AttrInts("pads", new[] { padding, padding, padding, padding }),
        AttrInt("count_include_pad", 1),
    }, output);

    public string ArgMax(string x, long axis = 1, bool keepdims = false, string? output = null) =>
        Node("ArgMax", new[] { x }, new[] { AttrInt("axis", axis), AttrInt("keepdims", keepdims ? 1 : 0) }, output);

    public string Cast(string x, OnnxType to, string? output = null) => Node("Cast", new[] { x }, new[] { AttrInt("to", (int)to) }, output);

    public string Transpose(string x, long[] perm, string? output = null) => Node("Transpose", new[] { x }, new[] { AttrInts("perm", perm) }, output);

    /// <summary>uint8 NHWC RGB → float NCHW, /255, then (x − mean) / std per channel.</summary>
    public string Preprocess(string nhwcUint8, float[] mean, float[] std)
    {
        var f = Cast(nhwcUint8, OnnxType.Float);
        var nchw = Transpose(f, new long[] { 0, 3, 1, 2 });
        var unit = Div(nchw, ConstScalar(255f));
        var centered = Sub(unit, ConstFloats(mean, new long[] { 1, mean.Length, 1, 1 }));
        return Div(centered, ConstFloats(std, new long[] { 1, std.Length, 1, 1 }));
    }

    // ------------------------------------------------------------------ output
    /// <summary>The ModelProto: IR version, producer, the default-domain opset, and the graph.</summary>
    internal ModelProto ToModel(string producer = "DeepLabTorch", string? docString = null)
    {
        if (_inputs.Count == 0 || _outputs.Count == 0) throw new InvalidOperationException("the graph needs at least one input and one output");
        var graph = new GraphProto { Name = _graphName };
        graph.Node.AddRange(_nodes);
        graph.Initializer.AddRange(_initializers);
        graph.Input.AddRange(_inputs);
        graph.Output.AddRange(_outputs);
        if (docString is not null) graph.DocString = docString;
        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = producer,
            ProducerVersion = typeof(OnnxGraphBuilder).Assembly.GetName().Version?.ToString() ?? "0",
            Graph = graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        return model;
    }

    /// <summary>The serialized ModelProto.</summary>
    public byte[] ToBytes(string producer = "DeepLabTorch", string? docString = null) => ToModel(producer, docString).ToByteArray();

    /// <summary>Writes the model atomically.</summary>
    public void Save(string path, string producer = "DeepLabTorch")
    {
        var model = ToModel(producer);
        AtomicFile.Write(path, s => model.WriteTo(s));
    }
}
