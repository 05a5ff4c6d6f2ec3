using DeepLabTorch.Models.Backbones;
using DeepLabTorch.Torch;
using static DeepLabTorch.Torch.torch;
using F = DeepLabTorch.Torch.torch.nn.functional;

namespace DeepLabTorch.Models;

/// <summary>
/// DeepLabV3+: backbone → ASPP → decoder, logits upsampled bilinearly to the input size.
/// Parameter for parameter the reference PyTorch implementation (pytorch-deeplab-xception layout):
/// state_dict keys are "backbone.*", "aspp.*", "decoder.*" with the reference's names and order.
/// </summary>
public sealed class DeepLabV3Plus : nn.Module<Tensor, Tensor>
{
    private readonly Backbone backbone;
    private readonly Aspp aspp;
    private readonly Decoder decoder;
    private bool _freezeBatchNorm;

    public DeepLabV3Plus(ModelConfig config) : base(nameof(DeepLabV3Plus))
    {
        Config = config.Validate();
        backbone = config.Backbone switch
        {
            "mobilenet" => new MobileNetV2(config.OutputStride),
            "xception" => new AlignedXception(config.OutputStride),
            "resnet" => new ResNet(config.OutputStride),
            _ => throw new UserException($"unknown backbone '{config.Backbone}'"),
        };
        var (lowChannels, highChannels) = Architecture.BackboneChannels(config.Backbone);
        aspp = new Aspp(highChannels, config.OutputStride);
        decoder = new Decoder(lowChannels, config.NumClasses, config.AlignCorners);
        RegisterComponents();
    }

    public ModelConfig Config { get; }
    public Backbone Backbone => backbone;
    public Aspp Aspp => aspp;
    public Decoder Decoder => decoder;

    /// <summary>state_dict prefix of the final 1×1 classifier, whose shape depends on NumClasses.</summary>
    public string ClassifierPrefix => $"decoder.last_conv.{Decoder.ClassifierIndex}";

    /// <summary>
    /// When true, train() leaves every BatchNorm in eval mode (running statistics fixed, batch
    /// statistics unused) while the rest trains. Setting it applies at once.
    /// </summary>
    public bool FreezeBatchNorm
    {
        get => _freezeBatchNorm;
        set
        {
            _freezeBatchNorm = value;
            if (training) train(true);
        }
    }

    public override nn.Module train(bool mode = true)
    {
        base.train(mode);
        if (mode && _freezeBatchNorm)
            foreach (var m in modules())
                if (m is nn.BatchNorm2d bn) bn.eval();
        return this;
    }

    /// <summary>Backbone parameters (trained at the base learning rate), in state_dict order.</summary>
    public IEnumerable<nn.Parameter> BackboneParameters() => backbone.parameters().Where(p => p.requires_grad);

    /// <summary>ASPP and decoder parameters (trained at 10× the base learning rate), in state_dict order.</summary>
    public IEnumerable<nn.Parameter> HeadParameters() => aspp.parameters().Concat(decoder.parameters()).Where(p => p.requires_grad);

    /// <summary>The reference's two optimizer groups: backbone at lr, ASPP + decoder at 10 × lr.</summary>
    public IReadOnlyList<optim.ParamGroup> ParameterGroups(double lr) => new[]
    {
        new optim.ParamGroup(BackboneParameters(), lr),
        new optim.ParamGroup(HeadParameters(), lr * Architecture.HeadLearningRateMultiplier),
    };

    public override Tensor forward(Tensor input)
    {
        Layers.CheckImageBatch(input, 3, nameof(DeepLabV3Plus));
        var s = input.shape;
        if (training && s[0] < 2 && !_freezeBatchNorm)
            throw new ArgumentException("DeepLabV3Plus in training mode needs a batch of at least 2 images (BatchNorm of the " +
                "ASPP image-pooling branch sees one value per channel); use a larger batch, eval(), or FreezeBatchNorm");
        using var features = backbone.forward(input);
        using var context = aspp.forward(features.Output);
        using var logits = decoder.forward(context, features.LowLevel);
        return F.interpolate(logits, (s[2], s[3]), nn.InterpolationMode.Bilinear, Config.AlignCorners);
    }

    // ------------------------------------------------------------------ reference compatibility
    private static readonly Lazy<IReadOnlyDictionary<string, string>> MobileNetAliases = new(BuildMobileNetAliases);
    private static readonly IReadOnlyDictionary<string, string> NoAliases = new Dictionary<string, string>();

    /// <summary>
    /// The reference's alias keys for a backbone, mapped to the canonical keys: its MobileNetV2 also
    /// exposes features[0:4] as "backbone.low_level_features.*" and features[4:] as
    /// "backbone.high_level_features.*" (same tensors, same indices). Xception and ResNet have none.
    /// </summary>
    public static IReadOnlyDictionary<string, string> ReferenceAliases(string backbone) => backbone switch
    {
        "mobilenet" => MobileNetAliases.Value,
        "xception" or "resnet" => NoAliases,
        _ => throw new UserException($"unknown backbone '{backbone}': expected one of {string.Join(", ", Architecture.Backbones)}"),
    };

    private static IReadOnlyDictionary<string, string> BuildMobileNetAliases()
    {
        // Built from a real MobileNetV2's keys so the map can never drift from the module tree.
        var map = new Dictionary<string, string>();
        using var net = new MobileNetV2(16);
        foreach (var (alias, canonical) in MobileNetAliasPairs(net.state_dict().Keys.Select(k => "backbone." + k)))
            map[alias] = canonical;
        return map;
    }

    private static IEnumerable<(string alias, string canonical)> MobileNetAliasPairs(IEnumerable<string> canonicalKeys)
    {
        const string features = "backbone.features.";
        var keys = canonicalKeys.Where(k => k.StartsWith(features, StringComparison.Ordinal)).ToList();
        foreach (var low in new[] { true, false })
            foreach (var k in keys)
            {
                var rest = k[features.Length..];
                int index = int.Parse(rest[..rest.IndexOf('.')], System.Globalization.CultureInfo.InvariantCulture);
                if ((index < Architecture.MobileNetLowLevelModules) == low)
                    yield return ((low ? "backbone.low_level_features." : "backbone.high_level_features.") + rest, k);
            }
    }

    /// <summary>
    /// state_dict() plus the reference's alias keys, in the reference's order (what the reference's
    /// own state_dict() returns). The tensors are the model's own: do not dispose them.
    /// </summary>
    public Dictionary<string, Tensor> ReferenceStateDict()
    {
        var own = state_dict();
        if (Config.Backbone != "mobilenet") return own;
        var result = new Dictionary<string, Tensor>();
        foreach (var (k, t) in own.Where(kv => kv.Key.StartsWith("backbone.", StringComparison.Ordinal))) result[k] = t;
        foreach (var (alias, canonical) in MobileNetAliasPairs(own.Keys)) result[alias] = own[canonical];
        foreach (var (k, t) in own.Where(kv => !kv.Key.StartsWith("backbone.", StringComparison.Ordinal))) result[k] = t;
        return result;
    }

    /// <summary>
    /// Loads a state_dict written by the reference implementation (or by us): alias keys are accepted
    /// in place of canonical ones, and the num_batches_tracked of a BatchNorm whose statistics are
    /// loaded defaults to 0 when absent (checkpoints of PyTorch before 0.4.1 lack it). With strict, other missing or unexpected keys are errors;
    /// shape mismatches always are (for example a classifier trained for another number of classes).
    /// </summary>
    public void LoadReferenceStateDict(IReadOnlyDictionary<string, Tensor> sd, bool strict = true) =>
        LoadReferenceStateDict(sd, strict, keepClassifier: false);

    /// <summary>
    /// As LoadReferenceStateDict(sd, strict), and with keepClassifier the weights under
    /// ClassifierPrefix are ignored and this model's classifier is kept: fine-tuning from weights
    /// trained for another number of classes.
    /// </summary>
    public void LoadReferenceStateDict(IReadOnlyDictionary<string, Tensor> sd, bool strict, bool keepClassifier)
    {
        var aliases = ReferenceAliases(Config.Backbone);
        var own = state_dict();
        var mapped = new Dictionary<string, Tensor>();
        var classifier = ClassifierPrefix + ".";
        foreach (var (k, t) in sd)
        {
            if (keepClassifier && k.StartsWith(classifier, StringComparison.Ordinal)) continue;
            if (aliases.TryGetValue(k, out var canonical))
            {
                // The canonical key wins when both are present: in the reference they are one tensor.
                if (!sd.ContainsKey(canonical)) mapped[canonical] = t;
            }
            else
            {
                mapped[k] = t;
            }
        }
        if (keepClassifier)
            foreach (var (k, t) in own)
                if (k.StartsWith(classifier, StringComparison.Ordinal)) mapped[k] = t;
        var defaults = new List<Tensor>();
        try
        {
            foreach (var (k, t) in own)
                if (!mapped.ContainsKey(k) && k.EndsWith(".num_batches_tracked", StringComparison.Ordinal) &&
                    mapped.ContainsKey(k[..^"num_batches_tracked".Length] + "running_mean"))
                {
                    // Only for a BatchNorm that is being loaded: a partial load leaves the others alone.
                    var zero = zeros(t.shape, t.dtype).DetachFromDisposeScope();
                    defaults.Add(zero);
                    mapped[k] = zero;
                }
            try
            {
                load_state_dict(mapped, strict);
            }
            catch (ArgumentException e)
            {
                var c = Config;
                throw new UserException($"the weights do not fit DeepLabV3+ ({c.Backbone}, output stride {c.OutputStride}, {c.NumClasses} classes): {e.Message}", e);
            }
        }
        finally
        {
            foreach (var d in defaults) d.Dispose();
        }
    }
}
