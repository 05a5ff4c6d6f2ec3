using System.Globalization;
using DeepLabTorch.Models;
using DeepLabTorch.Models.Backbones;
using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Models;

/// <summary>
/// Structure against the shared reference facts: state_dict keys, shapes, dtypes and order
/// (tests/reference/state-dict/*.tsv, copied from shared/reference), parameter counts, and feature strides on odd input sizes.
/// </summary>
[Collection("Models")]
public class ArchitectureTests
{
    private sealed record TsvRow(string Key, long[] Shape, string DType, string? AliasOf);

    /// <summary>
    /// The reference listing of a backbone at 21 classes: the shared tests/reference/state-dict TSV where
    /// there is one, else what model_deeplab.py --mode keys prints for it (the same format; no alias keys).
    /// </summary>
    private static (List<TsvRow> rows, long parameters) ReadTsv(string backbone, int outputStride)
    {
        var dir = Path.GetDirectoryName(ReferenceGolden.RepoFile("tests", "reference", "state-dict", "deeplabv3plus-mobilenet-21.tsv"))!;
        var path = Path.Combine(dir, $"deeplabv3plus-{backbone}-21.tsv");
        var lines = File.Exists(path)
            ? File.ReadAllLines(path)
            : ReferenceGolden.RunPython(ReferenceGolden.ScriptPath("model_deeplab.py"), "--mode", "keys", "--backbone", backbone,
                "--os", outputStride.ToString(CultureInfo.InvariantCulture), "--classes", "21").Split('\n');
        if (!File.Exists(path)) path = $"model_deeplab.py --mode keys --backbone {backbone}";
        var rows = new List<TsvRow>();
        long parameters = -1;
        foreach (var line in lines)
        {
            if (line.StartsWith("# parameters:", StringComparison.Ordinal))
                parameters = long.Parse(line["# parameters:".Length..].Split(';')[0].Trim(), CultureInfo.InvariantCulture);
            if (line.StartsWith('#') || line.Length == 0) continue;
            var f = line.Split('\t');
            var shape = f[1].Trim('[', ']').Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(s => long.Parse(s, CultureInfo.InvariantCulture)).ToArray();
            string? alias = f.Length > 3 && f[3].StartsWith("alias-of:", StringComparison.Ordinal) ? f[3]["alias-of:".Length..] : null;
            rows.Add(new TsvRow(f[0], shape, f[2], alias));
        }
        Assert.True(rows.Count > 300 && parameters > 0, $"{path} looks truncated");
        return (rows, parameters);
    }

    private static string DType(Tensor t) => t.dtype switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.Int64 => "int64",
        var d => d.ToString(),
    };

    private static void AssertSameEntries(IReadOnlyList<TsvRow> expected, Dictionary<string, Tensor> actual, string what)
    {
        var keys = actual.Keys.ToList();
        for (int i = 0; i < Math.Min(expected.Count, keys.Count); i++)
        {
            var e = expected[i];
            Assert.True(e.Key == keys[i], $"{what}: entry {i} is '{keys[i]}', the reference has '{e.Key}'");
            var t = actual[keys[i]];
            Assert.True(e.Shape.SequenceEqual(t.shape), $"{what}: {e.Key} has shape [{string.Join(", ", t.shape)}], the reference [{string.Join(", ", e.Shape)}]");
            Assert.True(e.DType == DType(t), $"{what}: {e.Key} is {DType(t)}, the reference {e.DType}");
        }
        Assert.Equal(expected.Count, keys.Count);
    }

    /// <summary>One model per configuration (the big backbones are slow to build on 2 cores): checks
    /// state_dict against the reference listing, the parameter count, and the feature strides.</summary>
    public static TheoryData<string, int> CatalogueBackbonesAndStrides()
    {
        var data = new TheoryData<string, int>();
        foreach (var entry in ModelCatalog.Entries)
            foreach (var os in entry.OutputStrides.Reverse())
                data.Add(entry.Name, os);
        return data;
    }

    [LinuxTheory(LinuxOnly.Python)]
    [MemberData(nameof(CatalogueBackbonesAndStrides))]
    public void StructureEqualsTheReference(string backbone, int outputStride)
    {
        var (rows, parameters) = ReadTsv(backbone, outputStride);
        using var model = ModelFactory.Create(new ModelConfig(backbone, outputStride, 21));

        // Saving writes canonical names only; the reference's own state_dict adds the alias keys.
        AssertSameEntries(rows.Where(r => r.AliasOf is null).ToList(), model.StateDictInOrder(), "state_dict()");
        var full = model.ReferenceStateDict();
        AssertSameEntries(rows, full, "ReferenceStateDict()");
        foreach (var r in rows.Where(r => r.AliasOf is not null))
            Assert.Same(full[r.AliasOf!], full[r.Key]);

        var aliases = ModelCatalog.Get(backbone).AliasMap;
        Assert.Equal(rows.Where(r => r.AliasOf is not null).ToDictionary(r => r.Key, r => r.AliasOf!), aliases);

        Assert.Equal(parameters, ModelFactory.ParameterCount(model));
        Assert.Equal(model.parameters().Count(), model.named_parameters().Select(p => p.name).Distinct().Count());

        AssertStrides(model, backbone, outputStride);
        var entry = ModelCatalog.Get(backbone);
        Assert.True(model.Backbone.GetSubmodule(entry.LowLevelTap) is not null, $"{backbone}: no low-level tap '{entry.LowLevelTap}'");
        Assert.Same(entry, model.Backbone.Descriptor);
    }

    /// <summary>
    /// Each backbone's weights (the reference's keys, aliases included, and our canonical keys alone) are
    /// recognised as that backbone by its own pattern and by no other entry's: the patterns cannot overlap.
    /// </summary>
    [Fact]
    public void EachBackboneIsRecognisedFromItsOwnKeysOnly()
    {
        foreach (var entry in ModelCatalog.Entries)
        {
            using var model = ModelFactory.Create(new ModelConfig(entry.Name, 16, 21));
            foreach (var keys in new[] { model.ReferenceStateDict().Keys.ToList(), model.StateDictInOrder().Keys.ToList() })
            {
                var recognisers = ModelCatalog.Entries.Where(e => e.Recognises(keys)).Select(e => e.Name).ToList();
                Assert.True(recognisers.SequenceEqual(new[] { entry.Name }), $"{entry.Name}'s keys are recognised by [{string.Join(", ", recognisers)}]");
                Assert.Same(entry, ModelCatalog.Recognise(keys));
            }
        }
        Assert.Null(ModelCatalog.Recognise(new[] { "aspp.conv1.weight", "decoder.conv1.weight" }));
    }

    /// <summary>Low-level stride 4, high-level stride = output stride, logits at the input size, on 65×97.</summary>
    private static void AssertStrides(DeepLabV3Plus model, string backbone, int outputStride)
    {
        const int h = 65, w = 97;
        var entry = ModelCatalog.Get(backbone);
        var (lowC, highC) = (entry.LowLevelChannels, entry.HighLevelChannels);
        model.eval();
        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        var x = randn(1, 3, h, w);
        using var features = model.Backbone.forward(x);
        // Every stride-2 layer maps n to ceil(n / 2), so stride s gives ceil(n / s).
        static long Up(long n, long s) => (n + s - 1) / s;
        Assert.Equal(new long[] { 1, lowC, Up(h, 4), Up(w, 4) }, features.LowLevel.shape);
        Assert.Equal(new long[] { 1, highC, Up(h, outputStride), Up(w, outputStride) }, features.Output.shape);
        Assert.Equal(model.Backbone.LowLevelChannels, lowC);
        Assert.Equal(model.Backbone.OutputChannels, highC);
        var y = model.forward(x);
        Assert.Equal(new long[] { 1, model.Config.NumClasses, h, w }, y.shape);
        Assert.True(y.isfinite().all().item<bool>());
    }

    [Fact]
    public void AsppRatesAndChannelTableFollowTheReference()
    {
        Assert.Equal(new[] { 6, 12, 18 }, Architecture.AsppRates(16));
        Assert.Equal(new[] { 12, 24, 36 }, Architecture.AsppRates(8));
        Assert.Equal((24, 320), (ModelCatalog.Get("mobilenet").LowLevelChannels, ModelCatalog.Get("mobilenet").HighLevelChannels));
        Assert.Equal((128, 2048), (ModelCatalog.Get("xception").LowLevelChannels, ModelCatalog.Get("xception").HighLevelChannels));
        Assert.Equal((256, 2048), (ModelCatalog.Get("resnet").LowLevelChannels, ModelCatalog.Get("resnet").HighLevelChannels));
        Assert.Throws<UserException>(() => Architecture.AsppRates(32));
    }

    [Theory]
    [InlineData(16, 6)]
    [InlineData(8, 12)]
    public void AsppBranchesUseTheRatesOfTheOutputStride(int outputStride, long firstRate)
    {
        using var model = ModelFactory.Create(new ModelConfig("mobilenet", outputStride, 21));
        var aspp2 = (AsppBranch)model.Aspp.GetSubmodule("aspp2")!;
        var conv = (Conv2d)aspp2.GetSubmodule("atrous_conv")!;
        Assert.Equal(new[] { firstRate, firstRate }, conv.dilation);
        Assert.Equal(new[] { firstRate, firstRate }, conv.padding);
    }
}
