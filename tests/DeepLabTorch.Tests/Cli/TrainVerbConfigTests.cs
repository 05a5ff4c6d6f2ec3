using CommandLine;
using DeepLabTorch.Cli.Verbs;
using DeepLabTorch.Config;
using DeepLabTorch.Tests.Training;
using Xunit;

namespace DeepLabTorch.Tests.Cli;

/// <summary>Precedence: record defaults, then the --config file, then the flags.</summary>
public class TrainVerbConfigTests : IDisposable
{
    private readonly string _dir = ReferenceScripts.TempDir("verbcfg");

    public void Dispose() => Directory.Delete(_dir, true);

    private static TrainVerb Parse(params string[] args)
    {
        var parsed = new Parser(s => s.HelpWriter = null).ParseArguments(args.Prepend("train"), TrainVerb.FlagsType);
        return parsed is Parsed<object> { Value: TrainVerb v } ? v : throw new InvalidOperationException("parse failed: " + string.Join(" ", args));
    }

    [Fact]
    public void FlagsOverrideTheFileWhichOverridesDefaults()
    {
        var cfg = Path.Combine(_dir, "c.json");
        File.WriteAllText(cfg, """{ "backbone": "xception", "crop_size": 321, "batch_size": 6, "nesterov": true }""");
        var c = Parse("--config", cfg, "--backbone", "mobilenet", "--epochs", "3").BuildConfig();
        Assert.Equal("mobilenet", c.Backbone);          // flag beats file
        Assert.Equal(321, c.CropSize);                  // file beats default
        Assert.Equal(6, c.BatchSize);
        Assert.True(c.Nesterov);
        Assert.Equal(3, c.Epochs);
        Assert.Equal(513, c.BaseSize);                  // default
        Assert.Equal(0.007 / 4 * 6, c.Lr!.Value, 12);   // auto lr from the file's batch size
        Assert.Equal(Path.Combine("checkpoints", "pascal-mobilenet-deeplab-mobilenet"), c.Output);
    }

    [Fact]
    public void WithoutAFileTheReferenceDefaultsApply()
    {
        var c = Parse("--dataset", "synthetic").BuildConfig();
        Assert.Equal(new TrainConfig().Backbone, c.Backbone);
        Assert.Equal(TrainConfigRules.DefaultEpochs("synthetic"), c.Epochs);
        Assert.Equal(1, c.TestBatchSize);
    }
}
