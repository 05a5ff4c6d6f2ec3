using DeepLabTorch.Config;
using DeepLabTorch.Tests.Training;
using Xunit;

namespace DeepLabTorch.Tests.Config;

public class ConfigLoaderTests : IDisposable
{
    private readonly string _dir = ReferenceScripts.TempDir("config");

    public void Dispose() => Directory.Delete(_dir, true);

    private string Write(string name, string json)
    {
        var p = Path.Combine(_dir, name);
        File.WriteAllText(p, json);
        return p;
    }

    [Fact]
    public void DefaultsAreTheReferenceTrainPys()
    {
        var c = new TrainConfig();
        Assert.Equal("resnet", c.Backbone);
        Assert.Equal(16, c.OutStride);
        Assert.Equal(513, c.CropSize);
        Assert.Equal("ce", c.LossType);
        Assert.Equal("poly", c.LrScheduler);
        Assert.Equal(0.9, c.Momentum);
        Assert.Equal(5e-4, c.WeightDecay);
        Assert.Equal(1, c.EvalInterval);
        var r = TrainConfigRules.Resolve(c);
        Assert.Equal(50, r.Epochs);
        Assert.Equal(0.007, r.Lr!.Value, 12);               // 0.007 / 4 * batch 4
        Assert.Equal("deeplab-resnet", r.Checkname);
        Assert.Equal(Path.Combine("checkpoints", "pascal-resnet-deeplab-resnet"), r.Output);
        Assert.Equal(0.014, TrainConfigRules.Resolve(c with { BatchSize = 8 }).Lr!.Value, 12);
    }

    [Fact]
    public void FileValuesOverrideDefaultsAndBaseIsInherited()
    {
        Write("base.json", """{ "backbone": "mobilenet", "crop_size": 321, "epochs": 7 }""");
        var p = Write("child.json", """{ "base": "base.json", "epochs": 3, "lr": 0.01, "class_names": ["a", "b"] }""");
        var c = ConfigLoader.Load<TrainConfig>(p);
        Assert.Equal("mobilenet", c.Backbone);
        Assert.Equal(321, c.CropSize);
        Assert.Equal(3, c.Epochs);
        Assert.Equal(0.01, c.Lr);
        Assert.Equal(new[] { "a", "b" }, c.ClassNames);
        Assert.Equal(513, c.BaseSize);
    }

    [Fact]
    public void UnknownKeysAreErrorsNamingTheKeyAndFile()
    {
        var p = Write("bad.json", """{ "backbone": "mobilenet", "crop_sise": 321 }""");
        var e = Assert.Throws<UserException>(() => ConfigLoader.Load<TrainConfig>(p));
        Assert.Contains("crop_sise", e.Message);
        Assert.Contains("bad.json", e.Message);
        Assert.Contains("crop_size", e.Message); // the suggestion
    }

    [Theory]
    [InlineData("""{ "epochs": "ten" }""", "epochs")]
    [InlineData("""{ "epochs": 2.5 }""", "epochs")]
    [InlineData("""{ "nesterov": 1 }""", "nesterov")]
    [InlineData("""{ "lr": "0.1" }""", "lr")]
    [InlineData("""{ "backbone": null }""", "backbone")]
    [InlineData("""{ "class_names": "a" }""", "class_names")]
    [InlineData("""{ "class_names": [1, 2] }""", "class_names")]
    public void TypeMismatchesAreErrorsNamingTheKey(string json, string key)
    {
        var p = Write("types.json", json);
        var e = Assert.Throws<UserException>(() => ConfigLoader.Load<TrainConfig>(p));
        Assert.Contains($"'{key}'", e.Message);
    }

    [Fact]
    public void BrokenAndMissingFilesAreClear()
    {
        Assert.Contains("not found", Assert.Throws<UserException>(() => ConfigLoader.Load<TrainConfig>(Path.Combine(_dir, "nope.json"))).Message);
        var p = Write("broken.json", "{ \"epochs\": ");
        Assert.Contains("not valid JSON", Assert.Throws<UserException>(() => ConfigLoader.Load<TrainConfig>(p)).Message);
        Write("b1.json", """{ "base": "b0.json" }""");
        Write("b0.json", "{}");
        var two = Write("b2.json", """{ "base": "b1.json" }""");
        Assert.Contains("one level", Assert.Throws<UserException>(() => ConfigLoader.Load<TrainConfig>(two)).Message);
    }

    [Fact]
    public void SavedConfigRoundTrips()
    {
        var c = TrainConfigRules.Resolve(new TrainConfig { Backbone = "mobilenet", Dataset = "synthetic", CropSize = 65, ClassNames = new[] { "x", "y" } });
        var p = Path.Combine(_dir, "out", "config.json");
        ConfigLoader.Save(c, p);
        var back = ConfigLoader.Load<TrainConfig>(p);
        Assert.Equal(ConfigLoader.ToJson(c), ConfigLoader.ToJson(back));
        Assert.Contains("\"crop_size\": 65", File.ReadAllText(p));
    }

    [Theory]
    [InlineData("backbone", "vgg")]
    [InlineData("out-stride", "32")]
    [InlineData("use-sbd", "synthetic")]
    [InlineData("ft", "")]
    [InlineData("lr-step", "")]
    [InlineData("start-epoch", "")]
    [InlineData("nesterov", "")]
    public void BadValuesAndCombinationsAreRejected(string flag, string value)
    {
        var c = new TrainConfig();
        c = flag switch
        {
            "backbone" => c with { Backbone = value },
            "out-stride" => c with { OutStride = int.Parse(value) },
            "use-sbd" => c with { UseSbd = true, Dataset = value },
            "ft" => c with { Ft = true },
            "lr-step" => c with { LrScheduler = "step" },
            "start-epoch" => c with { Epochs = 3, StartEpoch = 3 },
            _ => c with { Nesterov = true, Momentum = 0 },
        };
        var e = Assert.Throws<UserException>(() => TrainConfigRules.Resolve(c));
        Assert.Contains("--" + flag, e.Message);
    }
}

public class ShippedConfigTests
{
    public static IEnumerable<object[]> Files() =>
        Directory.GetFiles(Path.Combine(ReferenceScripts.RepoRoot, "configs"), "*.json").Select(f => new object[] { Path.GetFileName(f) });

    [Theory]
    [MemberData(nameof(Files))]
    public void EveryShippedConfigLoadsAndResolves(string name)
    {
        var c = TrainConfigRules.Resolve(ConfigLoader.Load<TrainConfig>(Path.Combine(ReferenceScripts.RepoRoot, "configs", name)));
        Assert.Contains(c.Backbone, TrainConfigRules.Backbones);
        Assert.True(c.Epochs > 0 && c.Lr > 0);
    }

    [Fact]
    public void TheVocConfigsFollowTheReferenceRecipe()
    {
        var dir = Path.Combine(ReferenceScripts.RepoRoot, "configs");
        var m = ConfigLoader.Load<TrainConfig>(Path.Combine(dir, "voc-mobilenet-os16.json"));
        Assert.Equal(("mobilenet", 16, 0.007, 16, 50, true), (m.Backbone, m.OutStride, m.Lr!.Value, m.BatchSize, m.Epochs!.Value, m.UseSbd));
        var x = ConfigLoader.Load<TrainConfig>(Path.Combine(dir, "voc-xception-os16.json"));
        Assert.Equal("xception", x.Backbone);
        Assert.Equal(m with { Backbone = "xception", Checkname = "deeplab-xception" }, x);
    }
}
