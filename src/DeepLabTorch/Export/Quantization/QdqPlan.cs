using DeepLabTorch.Export.Onnx.Proto;

namespace DeepLabTorch.Export.Quantization;

/// <summary>
/// Which nodes of a float graph the int8 export quantises, decided before calibration so that only the
/// activations it needs are measured. A quantised unit is a Conv (or an Add whose inputs both come from
/// quantised units) together with the Relu or Clip(0, ·) that alone consumes its output: the unit's output is
/// quantised once, after the activation, and the QuantizeLinear's saturation at the zero point does the
/// activation's work, so ONNX Runtime fuses DequantizeLinear → Conv → QuantizeLinear into one integer conv.
/// Everything else (resizes, pooling, the attention branches of the face-parsing networks, the kept convolutions)
/// runs in float32 on dequantised values.
/// </summary>
internal sealed class QdqPlan
{
    /// <summary>The node index of each quantised unit's op (Conv or Add), with the index of the activation it absorbs, or −1.</summary>
    public Dictionary<int, int> Units { get; } = new();

    /// <summary>The absorbed activations' node indices.</summary>
    public HashSet<int> Absorbed { get; } = new();

    /// <summary>Every value whose range calibration measures: quantised units' inputs and outputs.</summary>
    public HashSet<string> Values { get; } = new(StringComparer.Ordinal);

    public List<string> QuantisedConvs { get; } = new();
    public List<string> FloatConvs { get; } = new();
    public int QuantisedAdds { get; private set; }

    /// <summary>The value a unit's output is known by after its activation.</summary>
    public string UnitOutput(GraphProto g, int node) =>
        Units[node] is var act && act >= 0 ? g.Node[act].Output[0] : g.Node[node].Output[0];

    public static QdqPlan Make(GraphProto g, IReadOnlyList<string>? keepFloat)
    {
        var plan = new QdqPlan();
        var consumers = Consumers(g);
        var convs = Enumerable.Range(0, g.Node.Count).Where(i => g.Node[i].OpType == "Conv").ToList();
        if (convs.Count == 0) throw new ArgumentException("the graph has no convolution to quantise");
        var kept = KeptConvs(g, convs, keepFloat);
        var outputs = g.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        var quantisedValues = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < g.Node.Count; i++)
        {
            var n = g.Node[i];
            bool wanted = n.OpType switch
            {
                "Conv" => !kept.Contains(n.Name),
                "Add" => n.Input.All(quantisedValues.Contains),
                _ => false,
            };
            if (n.OpType == "Conv") (wanted ? plan.QuantisedConvs : plan.FloatConvs).Add(n.Name);
            if (!wanted || outputs.Contains(n.Output[0])) continue;
            int act = AbsorbableActivation(g, consumers, n.Output[0], outputs);
            plan.Units[i] = act;
            if (act >= 0) plan.Absorbed.Add(act);
            if (n.OpType == "Add") plan.QuantisedAdds++;
            var output = plan.UnitOutput(g, i);
            quantisedValues.Add(output);
            plan.Values.Add(output);
            plan.Values.Add(n.Input[0]);
            if (n.OpType == "Add") plan.Values.Add(n.Input[1]);
        }
        return plan;
    }

    /// <summary>Node index of the Relu or Clip(0, max) that is the value's one consumer, or −1.</summary>
    private static int AbsorbableActivation(GraphProto g, Dictionary<string, List<int>> consumers, string value, HashSet<string> outputs)
    {
        if (!consumers.TryGetValue(value, out var list) || list.Count != 1) return -1;
        var n = g.Node[list[0]];
        if (outputs.Contains(n.Output[0])) return -1;
        if (n.OpType == "Relu") return list[0];
        if (n.OpType == "Clip" && n.Input.Count >= 2 && ScalarInitializer(g, n.Input[1]) == 0f) return list[0];
        return -1;
    }

    private static float? ScalarInitializer(GraphProto g, string name)
    {
        var t = g.Initializer.FirstOrDefault(i => i.Name == name);
        if (t is null || t.DataType != (int)TensorProto.Types.DataType.Float || t.RawData.Length != 4) return null;
        return BitConverter.ToSingle(t.RawData.Span);
    }

    internal static Dictionary<string, List<int>> Consumers(GraphProto g)
    {
        var map = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        for (int i = 0; i < g.Node.Count; i++)
            foreach (var input in g.Node[i].Input)
            {
                if (!map.TryGetValue(input, out var list)) map[input] = list = new List<int>();
                list.Add(i);
            }
        return map;
    }

    /// <summary>
    /// The Conv nodes left in float32: by default the first (it sees the raw image) and the last (the classifier, whose
    /// logits decide every pixel). A --keep-float list replaces the defaults; in it "first" and "classifier" name them,
    /// and any other entry is a convolution's state_dict path or a module prefix of some (e.g. "decoder").
    /// </summary>
    private static HashSet<string> KeptConvs(GraphProto g, List<int> convs, IReadOnlyList<string>? keepFloat)
    {
        var names = convs.Select(i => g.Node[i].Name).ToList();
        var kept = new HashSet<string>(StringComparer.Ordinal);
        foreach (var raw in keepFloat ?? new[] { "first", "classifier" })
        {
            var entry = raw.Trim();
            if (entry.Length == 0) continue;
            var matches = entry switch
            {
                "first" => new List<string> { names[0] },
                "classifier" => new List<string> { names[^1] },
                _ => names.Where(n => n == entry || n.StartsWith(entry.TrimEnd('.') + ".", StringComparison.Ordinal)).ToList(),
            };
            if (matches.Count == 0)
                throw new UserException($"--keep-float {entry}: no convolution has that name or prefix; the names are state_dict paths such as {names[0]}, {names[names.Count / 2]} or {names[^1]} (or 'first', 'classifier')");
            kept.UnionWith(matches);
        }
        return kept;
    }
}
