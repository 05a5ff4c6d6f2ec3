using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Models.Backbones;

/// <summary>
/// MobileNetV2 (width 1.0) as the reference DeepLabV3+ uses it: one Sequential "features"
/// (stem conv + 17 inverted residuals). Once the output stride is reached, strides become dilation
/// (with the reference's schedule: a stage gets the rate accumulated by the stages before it).
/// Low-level features are features[0..3] (24 channels, stride 4), high-level the rest (320 channels).
/// The reference also exposes features[0:4] and features[4:] as "low_level_features" and
/// "high_level_features"; those names are aliases of the same tensors (see <see cref="ReferenceAliases"/>).
/// </summary>
internal sealed class MobileNetV2 : Backbone
{
    /// <summary>One row of MobileNetV2's inverted-residual table: expansion t, channels c, repeats n, stride s.</summary>
    public readonly record struct InvertedResidualStage(int Expansion, int Channels, int Repeats, int Stride);

    public const int StemChannels = 32;
    public static IReadOnlyList<InvertedResidualStage> Stages { get; } = new InvertedResidualStage[]
    {
        new(1, 16, 1, 1), new(6, 24, 2, 2), new(6, 32, 3, 2), new(6, 64, 4, 2),
        new(6, 96, 3, 1), new(6, 160, 3, 2), new(6, 320, 1, 1),
    };
    /// <summary>features[0..3] (stem and the first three inverted residuals) give the low-level features.</summary>
    public const int LowLevelModules = 4;

    private const string LowLevelAlias = "backbone.low_level_features.";

    public static BackboneDescriptor Entry { get; } = new(
        Name: "mobilenet",
        Title: "MobileNetV2",
        Factory: (d, os) => new MobileNetV2(os),
        LowLevelChannels: 24,
        HighLevelChannels: 320,
        LowLevelTap: $"features.{LowLevelModules - 1}",
        WeightKeyPattern: @"^backbone\.(low_level_)?features\.",
        ReferenceAliases: ReferenceAliases);

    private readonly Sequential features;

    public MobileNetV2(int outputStride) : base(nameof(MobileNetV2), Entry, outputStride)
    {
        int stem = StemChannels;
        features = nn.Sequential(nn.Sequential(
            Layers.Conv(3, stem, 3, stride: 2, padding: 1),
            new BatchNorm2d(stem),
            nn.ReLU6(inplace: true)));
        int currentStride = 2, rate = 1;
        long channels = stem;
        foreach (var stage in Stages)
        {
            int stride, dilation;
            if (currentStride == outputStride)
            {
                stride = 1;
                dilation = rate;
                rate *= stage.Stride;
            }
            else
            {
                stride = stage.Stride;
                dilation = 1;
                currentStride *= stage.Stride;
            }
            for (int i = 0; i < stage.Repeats; i++)
            {
                features.append(new InvertedResidual(channels, stage.Channels, i == 0 ? stride : 1, dilation, stage.Expansion));
                channels = stage.Channels;
            }
        }
        RegisterComponents();
        Layers.InitWeights(this, nn.init.FanInOut.FanIn);
    }

    /// <summary>The Sequential holding every layer (features.0 … features.17).</summary>
    public Sequential Features => features;

    public override BackboneFeatures forward(Tensor x)
    {
        Tensor current = x;
        Tensor? low = null;
        for (int i = 0; i < features.Count; i++)
        {
            var next = ((nn.Module<Tensor, Tensor>)features[i]).Run(current);
            // Keep the low-level map (the output of features[3]); free every other intermediate.
            if (!ReferenceEquals(current, x) && !ReferenceEquals(current, low)) current.Dispose();
            current = next;
            if (i == LowLevelModules - 1) low = current;
        }
        if (low is null) throw new InvalidOperationException("MobileNetV2 has fewer feature modules than its low-level split");
        return new BackboneFeatures(current, low);
    }

    public override (string High, string Low) WriteGraph(IBackboneGraph g, string input)
    {
        // features.0: stem conv (own padding 1), BatchNorm, ReLU6.
        var stem = (Sequential)features[0];
        string h = g.Relu6(g.ConvBn(input, (Conv2d)stem[0], (BatchNorm)stem[1]));
        string? low = null;
        for (int i = 1; i < features.Count; i++)
        {
            h = ((InvertedResidual)features[i]).WriteGraph(g, h);
            if (i == LowLevelModules - 1) low = h;
        }
        return (h, low ?? throw new InvalidOperationException("MobileNetV2 is shorter than its low-level split"));
    }

    /// <summary>
    /// The reference also exposes features[0:4] as "backbone.low_level_features.*" and features[4:] as
    /// "backbone.high_level_features.*": the same tensors under second names, with the same indices.
    /// Given the canonical keys, yields (alias, canonical) pairs in the reference's order.
    /// </summary>
    private static IEnumerable<(string, string)> ReferenceAliases(IEnumerable<string> canonicalKeys)
    {
        const string prefix = "backbone.features.";
        var keys = canonicalKeys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).ToList();
        foreach (var low in new[] { true, false })
            foreach (var k in keys)
            {
                var rest = k[prefix.Length..];
                int index = int.Parse(rest[..rest.IndexOf('.')], System.Globalization.CultureInfo.InvariantCulture);
                if ((index < LowLevelModules) == low)
                    yield return ((low ? LowLevelAlias : "backbone.high_level_features.") + rest, k);
            }
    }
}
