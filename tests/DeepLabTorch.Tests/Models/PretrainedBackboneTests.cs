using System.Text.Json;
using DeepLabTorch.Checkpoints;
using DeepLabTorch.Config;
using DeepLabTorch.Extensions;
using DeepLabTorch.Models;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Models;

/// <summary>The files of tests/reference/pretrained_files.py (torchvision's resnet50, the reference's MobileNetV2 and Cadene's Xception layouts), made once.</summary>
public sealed class PretrainedFiles : IDisposable
{
    public PretrainedFiles()
    {
        Dir = Python.NewTempDir("pretrained");
        Python.Run("pretrained_files.py", Dir);
        Expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "expected.json"))).RootElement.Clone();
    }

    public string Dir { get; }
    public JsonElement Expected { get; }
    public string this[string name] => Path.Combine(Dir, name);

    public void Dispose() => Directory.Delete(Dir, true);
}

/// <summary>ImageNet backbones loaded as the reference loads them: the very tensors it would copy, and nothing silently.</summary>
public class PretrainedBackboneTests(PretrainedFiles files) : IClassFixture<PretrainedFiles>
{
    private static void AssertSame(Tensor expected, Tensor actual, string what)
    {
        using var e = expected.dim() == 2 && actual.dim() == 4 ? expected.unsqueeze(-1).unsqueeze(-1) : expected.alias();
        Assert.True(e.shape.SequenceEqual(actual.shape), $"{what}: shape");
        Assert.True(e.to(actual.dtype).equal(actual).all().item<bool>(), $"{what}: values differ");
    }

    [LinuxTheory(LinuxOnly.Python)]
    [InlineData("resnet50", "resnet50.pth", "layer3.5.conv2.weight")]
    [InlineData("resnet50", "resnet50.pth", "layer4.2.bn3.running_var")]
    [InlineData("mobilenet", "mobilenet.pth", "features.17.conv.3.weight")]
    public void NamedLayoutsLoadEveryTensorTheReferenceLoads(string backbone, string file, string key)
    {
        using var model = new DeepLabV3Plus(new ModelConfig(backbone, 16, 21));
        var report = PretrainedBackbone.Load(model, files[file]);
        Assert.Equal(files.Expected.GetProperty(file).GetInt32(), report.Loaded);
        Assert.Equal(0, report.LeftAtInit);
        var sd = WeightFiles.LoadStateDict(files[file], out _);
        try
        {
            AssertSame(sd[key], model.StateDictInOrder()["backbone." + key], key);
            Assert.True(report.Ignored >= 1);   // fc / the ImageNet classifier
        }
        finally
        {
            foreach (var t in sd.Values) t.Dispose();
        }
    }

    [LinuxFact(LinuxOnly.Python)]
    public void BiSeNetsContextPathStartsFromTorchvisionsResNet18()
    {
        using var model = ModelFactory.Build(new ModelConfig("bisenet", 16, 19));
        var report = PretrainedBackbone.Load(model, files["resnet18.pth"]);
        Assert.Equal(files.Expected.GetProperty("resnet18.pth").GetInt32(), report.Loaded);
        Assert.Equal(0, report.LeftAtInit);
        var sd = WeightFiles.LoadStateDict(files["resnet18.pth"], out _);
        try
        {
            AssertSame(sd["layer4.1.conv2.weight"], model.StateDictInOrder()["cp.resnet.layer4.1.conv2.weight"], "layer4");
        }
        finally
        {
            foreach (var t in sd.Values) t.Dispose();
        }
        Assert.Equal("auto", TrainConfigRules.Resolve(new TrainConfig { Dataset = "celebamask-hq", Backbone = "bisenet" }).PretrainedBackbone);
        Assert.Equal("none", TrainConfigRules.Resolve(new TrainConfig { Dataset = "celebamask-hq", Backbone = "stdc1" }).PretrainedBackbone);
    }

    [LinuxFact(LinuxOnly.Python)]
    public void TorchvisionsMobileNetMapsByStructure()
    {
        using var model = new DeepLabV3Plus(new ModelConfig("mobilenet", 16, 21));
        var report = PretrainedBackbone.Load(model, files["mobilenet_torchvision.pth"]);
        Assert.Equal(files.Expected.GetProperty("mobilenet_torchvision.pth").GetInt32(), report.Loaded);
        Assert.Equal(0, report.LeftAtInit);
        var sd = WeightFiles.LoadStateDict(files["mobilenet_torchvision.pth"], out _);
        var own = model.StateDictInOrder();
        try
        {
            // By hand from the two layouts: torchvision's expand, depthwise and project layers are ours 0/1, 3/4, 6/7.
            AssertSame(sd["features.2.conv.0.0.weight"], own["backbone.features.2.conv.0.weight"], "expand conv");
            AssertSame(sd["features.2.conv.1.1.running_var"], own["backbone.features.2.conv.4.running_var"], "depthwise BN");
            AssertSame(sd["features.17.conv.2.weight"], own["backbone.features.17.conv.6.weight"], "project conv");
            AssertSame(sd["features.1.conv.1.weight"], own["backbone.features.1.conv.3.weight"], "t=1 pointwise");
        }
        finally
        {
            foreach (var t in sd.Values) t.Dispose();
        }
    }

    [LinuxFact(LinuxOnly.Python)]
    public void CadeneXceptionGoesThroughTheReferencesCopies()
    {
        using var model = new DeepLabV3Plus(new ModelConfig("xception", 16, 21));
        using var conv4Before = model.StateDictInOrder()["backbone.conv4.pointwise.weight"].clone();
        var report = PretrainedBackbone.Load(model, files["xception.pth"]);
        Assert.Equal(files.Expected.GetProperty("xception.pth").GetInt32(), report.Loaded);
        var own = model.StateDictInOrder();
        var sd = WeightFiles.LoadStateDict(files["xception.pth"], out _);
        try
        {
            var block11 = sd.Keys.First(k => k.StartsWith("block11.", StringComparison.Ordinal) && k.Contains("pointwise", StringComparison.Ordinal));
            Assert.Equal(2, sd[block11].dim());   // Cadene's 2-D pointwise weights
            foreach (var i in new[] { 11, 12, 15, 19 })
                AssertSame(sd[block11], own["backbone.block" + i + block11["block11".Length..]], $"block{i} from block11");
            var block12 = sd.Keys.First(k => k.StartsWith("block12.", StringComparison.Ordinal));
            AssertSame(sd[block12], own["backbone.block20" + block12["block12".Length..]], "block20 from block12");
            AssertSame(sd["bn3.running_mean"], own["backbone.bn4.running_mean"], "bn4 from bn3");
            AssertSame(sd["conv4.pointwise.weight"], own["backbone.conv5.pointwise.weight"], "conv5 from conv4");
            AssertSame(sd["bn4.weight"], own["backbone.bn5.weight"], "bn5 from bn4");
            // The reference leaves conv4 at its initialisation: so do we, and the report says so.
            Assert.True(conv4Before.equal(own["backbone.conv4.pointwise.weight"]).all().item<bool>());
            Assert.True(report.LeftAtInit > 0);
        }
        finally
        {
            foreach (var t in sd.Values) t.Dispose();
        }
    }

    [LinuxFact(LinuxOnly.Python)]
    public void MaxItersZeroSavesTheStartingWeightsWithTheBackboneFromTheFile()
    {
        var dir = Python.NewTempDir("pretrained-cli");
        try
        {
            var run = Path.Combine(dir, "run");
            var synth = DeepLabTorch.Tests.Cli.CliRunner.Run(dir, "data", "synth", "--out", Path.Combine(dir, "data"), "--count", "6", "--width", "80", "--height", "60");
            Assert.True(synth.Code == 0, synth.Stderr);
            var r = DeepLabTorch.Tests.Cli.CliRunner.Run(dir, "train", "--dataset", "synthetic", "--data-root", Path.Combine(dir, "data"), "--backbone", "mobilenet",
                "--pretrained-backbone", files["mobilenet.pth"], "--max-iters", "0", "--crop-size", "65", "--base-size", "72", "--output", run);
            Assert.True(r.Code == 0, r.Stdout + r.Stderr);
            Assert.Contains("255 tensors loaded, 0 of the backbone's left at initialisation", r.Stderr);
            Assert.Contains("(SHA-256 ", r.Stderr);
            Assert.Equal(files["mobilenet.pth"], JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "config.json"))).RootElement.GetProperty("pretrained_backbone").GetString());
            // The checkpoint records the file and its hash (computed here independently).
            string hash;
            using (var stream = File.OpenRead(files["mobilenet.pth"])) hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(stream)).ToLowerInvariant();
            Assert.Equal($"{files["mobilenet.pth"]} sha256:{hash}", CheckpointStore.ReadInfo(Path.Combine(run, "last.safetensors"))!.PretrainedBackbone);
            var saved = WeightFiles.LoadStateDict(Path.Combine(run, "last.safetensors"), out _);
            var file = WeightFiles.LoadStateDict(files["mobilenet.pth"], out _);
            try
            {
                AssertSame(file["features.17.conv.6.weight"], saved["backbone.features.17.conv.6.weight"], "saved backbone");
            }
            finally
            {
                foreach (var t in saved.Values.Concat(file.Values)) t.Dispose();
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [LinuxFact(LinuxOnly.Python)]
    public void AShapeMismatchAndAWholeNetworkAreRefused()
    {
        // A file whose tensor has another shape than the backbone's is refused outright, naming it and both shapes.
        var dir = Python.NewTempDir("pretrained-bad");
        try
        {
            var sd = WeightFiles.LoadStateDict(files["resnet50.pth"], out _);
            try
            {
                using var narrow = zeros(7, 3, 7, 7);
                var bad = sd.ToDictionary(kv => kv.Key, kv => kv.Key == "conv1.weight" ? narrow : kv.Value);
                var path = Path.Combine(dir, "bad.safetensors");
                DeepLabTorch.Checkpoints.Safetensors.Write(path, bad, null);
                using var model = new DeepLabV3Plus(new ModelConfig("resnet50", 16, 21));
                var e = Assert.Throws<CheckpointException>(() => PretrainedBackbone.Load(model, path));
                Assert.Contains("conv1.weight [7, 3, 7, 7] in the file, [64, 3, 7, 7] in the model", e.Message);
            }
            finally
            {
                foreach (var t in sd.Values) t.Dispose();
            }
            var synth = DeepLabTorch.Tests.Cli.CliRunner.Run(dir, "data", "synth", "--out", Path.Combine(dir, "data"), "--count", "4", "--width", "64", "--height", "48");
            Assert.True(synth.Code == 0, synth.Stderr);
            var r = DeepLabTorch.Tests.Cli.CliRunner.Run(dir, "train", "--dataset", "synthetic", "--data-root", Path.Combine(dir, "data"), "--backbone", "stdc1",
                "--pretrained-backbone", files["resnet50.pth"], "--crop-size", "32", "--base-size", "48", "--batch-size", "2", "--output", Path.Combine(dir, "run"));
            Assert.Equal(2, r.Code);
            Assert.Contains("stdc1 has no ImageNet backbone file here", r.Stderr);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [LinuxFact(LinuxOnly.Python)]
    public void AFileForAnotherBackboneIsAnErrorNotNoise()
    {
        using var model = new DeepLabV3Plus(new ModelConfig("mobilenet", 16, 21));
        var e = Assert.Throws<CheckpointException>(() => PretrainedBackbone.Load(model, files["resnet50.pth"]));
        Assert.Contains("resnet50.pth", e.Message);
        Assert.Contains("not an ImageNet file for this backbone", e.Message);
    }

    [LinuxFact(LinuxOnly.Python)]
    public void AutoFindsTheFileInTorchHubsCacheOrSaysWhatToDo()
    {
        var saved = (Environment.GetEnvironmentVariable("TORCH_HOME"), Environment.GetEnvironmentVariable("XDG_CACHE_HOME"),
            Environment.GetEnvironmentVariable(PretrainedBackbone.MirrorVariable));
        var home = Python.NewTempDir("torch-home");
        try
        {
            // Offline: a mirror on a closed loopback port refuses at once.
            Environment.SetEnvironmentVariable(PretrainedBackbone.MirrorVariable, "http://127.0.0.1:9/weights");
            Environment.SetEnvironmentVariable("TORCH_HOME", home);
            Environment.SetEnvironmentVariable("XDG_CACHE_HOME", Path.Combine(home, "xdg"));
            Assert.Equal(Path.Combine(home, "hub", "checkpoints"), PretrainedBackbone.CacheFolders()[0]);
            Assert.Equal(Path.Combine(home, "xdg", "torch", "hub", "checkpoints"), PretrainedBackbone.CacheFolders()[1]);
            var cached = Path.Combine(home, "xdg", "torch", "hub", "checkpoints", "resnet50-19c8e357.pth");
            if (PretrainedBackbone.CacheFolders().Skip(2).Any(f => File.Exists(Path.Combine(f, "resnet50-19c8e357.pth")))) return; // a real cache on this machine
            var e = Assert.Throws<UserException>(() => PretrainedBackbone.Resolve("auto", "resnet50"));
            Assert.Contains("resnet50-19c8e357.pth", e.Message);
            Assert.Contains("http://127.0.0.1:9/weights/resnet50-19c8e357.pth", e.Message);
            Assert.Contains("could not be downloaded", e.Message);
            Assert.Contains("--pretrained-backbone none", e.Message);
            Assert.False(File.Exists(Path.Combine(home, "hub", "checkpoints", "resnet50-19c8e357.pth")));
            Directory.CreateDirectory(Path.GetDirectoryName(cached)!);
            File.Copy(files["resnet50.pth"], cached);
            Assert.Equal(cached, PretrainedBackbone.Resolve("auto", "resnet50"));
            Assert.Null(PretrainedBackbone.Resolve("none", "resnet50"));
            Assert.Throws<UserException>(() => PretrainedBackbone.Resolve(Path.Combine(home, "missing.pth"), "resnet50"));
        }
        finally
        {
            Environment.SetEnvironmentVariable("TORCH_HOME", saved.Item1);
            Environment.SetEnvironmentVariable("XDG_CACHE_HOME", saved.Item2);
            Environment.SetEnvironmentVariable(PretrainedBackbone.MirrorVariable, saved.Item3);
            Directory.Delete(home, true);
        }
    }

    [LinuxFact(LinuxOnly.Python)]
    public void RealDataSetsDefaultToAutoAndTheSyntheticSetToNone()
    {
        Assert.Equal("auto", TrainConfigRules.Resolve(new TrainConfig { Dataset = "pascal", Backbone = "mobilenet" }).PretrainedBackbone);
        Assert.Equal("none", TrainConfigRules.Resolve(new TrainConfig { Dataset = "synthetic", Backbone = "mobilenet" }).PretrainedBackbone);
        Assert.Equal("x.pth", TrainConfigRules.Resolve(new TrainConfig { Dataset = "pascal", PretrainedBackbone = "x.pth" }).PretrainedBackbone);
    }
}
