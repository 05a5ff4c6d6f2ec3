using System.Reflection;
using System.Text.Json.Nodes;
using CommandLine;
using DeepLabTorch.Cli;
using DeepLabTorch.Cli.Verbs;
using DeepLabTorch.Config;
using Xunit;

namespace DeepLabTorch.Tests.Config;

/// <summary>
/// Each training setting is declared once, on TrainConfig: the train verb's flags, the config keys, the
/// run folder's config.json and --help all come from that declaration, and nothing is declared twice.
/// </summary>
public class SettingsTests
{
    /// <summary>The train options that are no setting: they belong to one command line (and every verb's --log-level/--quiet).</summary>
    private static readonly string[] CommandLineOnly = { "config", "nproc", "log-level", "quiet" };

    private static Dictionary<string, PropertyInfo> TrainOptions() =>
        TrainVerb.FlagsType.GetProperties()
            .Where(p => p.GetCustomAttribute<OptionAttribute>() is not null)
            .ToDictionary(p => p.GetCustomAttribute<OptionAttribute>()!.LongName, p => p);

    [Fact]
    public void EverySettingHasAFlagAndEveryFlagASetting()
    {
        var settings = Settings.Of<TrainConfig>();
        var options = TrainOptions();
        // Every public settable property is a declared setting (Of throws otherwise), and the names are unique.
        Assert.Equal(typeof(TrainConfig).GetProperties().Count(p => p.CanWrite), settings.Count);
        Assert.Equal(settings.Count, settings.Select(s => s.Flag).Distinct().Count());
        foreach (var s in settings.Where(s => s.IsFlag))
        {
            Assert.True(options.TryGetValue(s.Flag, out var option), $"setting {s.Property.Name} has no --{s.Flag}");
            Assert.Equal(s.Property.Name, option!.Name);
            Assert.Equal(SettingFlags.FlagType(s), option.PropertyType);
        }
        var flagSettings = settings.Where(s => s.IsFlag).Select(s => s.Flag).ToHashSet();
        foreach (var name in options.Keys)
            Assert.True(flagSettings.Contains(name) || CommandLineOnly.Contains(name),
                $"train --{name} is neither a TrainConfig setting nor a command-line-only option: declare it on TrainConfig");
        // The options of the hand-written class are the command-line-only ones, nothing else.
        var declaredByHand = typeof(TrainVerb).GetProperties().Select(p => p.GetCustomAttribute<OptionAttribute>()?.LongName).OfType<string>();
        Assert.Equal(CommandLineOnly.OrderBy(x => x), declaredByHand.OrderBy(x => x));
    }

    [Fact]
    public void TheConfigKeysAreTheSettingsThatAreRecorded()
    {
        var keys = ConfigLoader.Keys<TrainConfig>().Keys.OrderBy(k => k).ToArray();
        var recorded = Settings.Of<TrainConfig>().Select(s => s.Key).OfType<string>().OrderBy(k => k).ToArray();
        Assert.Equal(recorded, keys);
        // The run folder's config.json has exactly those keys.
        var json = JsonNode.Parse(ConfigLoader.ToJson(TrainConfigRules.Resolve(new TrainConfig { Dataset = "synthetic" })))!.AsObject();
        Assert.Equal(recorded, json.Select(p => p.Key).OrderBy(k => k).ToArray());
        // Hand-checked spellings: kebab-case flags, snake_case keys.
        var outStride = Settings.Of<TrainConfig>().Single(s => s.Property.Name == nameof(TrainConfig.OutStride));
        Assert.Equal(("out-stride", "out_stride"), (outStride.Flag, outStride.Key));
        Assert.Null(Settings.Of<TrainConfig>().Single(s => s.Property.Name == nameof(TrainConfig.Overwrite)).Key);
    }

    [Theory]
    [InlineData("--out-stride", "32", "--out-stride must be one of 8, 16, got '32'")]
    [InlineData("--momentum", "1", "--momentum must be in [0, 1), got 1")]
    [InlineData("--lr", "0", "--lr must be above 0, got 0")]
    [InlineData("--num-classes", "256", "--num-classes must be in [2, 255], got 256")]
    [InlineData("--batch-size", "0", "--batch-size must be >= 1, got 0")]
    [InlineData("--loss-type", "hinge", "--loss-type must be one of ce, focal, dice, ohem, got 'hinge'")]
    [InlineData("--backbone", "vgg", "--backbone must be one of mobilenet, xception, resnet")]
    public void ADeclaredCheckRejectsTheValueNamingTheFlag(string flag, string value, string message)
    {
        var err = new StringWriter();
        var code = Program.Run(new[] { "train", "--dataset", "synthetic", flag, value }, new StringWriter(), err);
        Assert.Equal(2, code);
        Assert.Contains(message, err.ToString());
    }

    [Fact]
    public void EdgeValuesInsideTheBoundsPass()
    {
        var c = new TrainConfig { Dataset = "synthetic", Momentum = 0, NumClasses = 255, Workers = 0, Lr = 1e-9, OutStride = 8 };
        Assert.Equal(8, TrainConfigRules.Resolve(c).OutStride);
        Assert.Throws<UserException>(() => TrainConfigRules.Resolve(c with { TimeBudget = double.PositiveInfinity }));
        // A config-only setting is named by its key, not by a flag that does not exist.
        var e = Assert.Throws<UserException>(() => TrainConfigRules.Resolve(c with { VisImages = -1 }));
        Assert.Equal("config key 'vis_images' must be >= 0, got -1", e.Message);
    }

    [Fact]
    public void HelpShowsEachFlagWithItsDefault()
    {
        var stdout = new StringWriter();
        Assert.Equal(0, Program.Run(new[] { "train", "--help" }, stdout, new StringWriter()));
        var help = string.Join(" ", stdout.ToString().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
        foreach (var s in Settings.Of<TrainConfig>())
            Assert.Equal(s.IsFlag, help.Contains("--" + s.Flag + " ", StringComparison.Ordinal));
        Assert.Contains("--crop-size Training crop size. (default: 513)", help);
        Assert.Contains("--weight-decay SGD weight decay. (default: 0.0005)", help);
        Assert.Contains("(default: the reference's: 50 for pascal/sbd/folder, 30 for coco, 200 for cityscapes, 10 for synthetic)", help);
    }

    [Fact]
    public void FlagsOverABaseKeepWhatIsNotGivenAndSwitchesTurnOff()
    {
        var baseConfig = new TrainConfig { CropSize = 321, Nesterov = true, FreezeBn = true, ChannelsLast = true, Overwrite = true };
        var flags = (TrainVerb)Activator.CreateInstance(TrainVerb.FlagsType)!;
        TrainVerb.FlagsType.GetProperty(nameof(TrainConfig.BatchSize))!.SetValue(flags, 6);
        var c = SettingFlags.Apply(flags, baseConfig, new HashSet<string> { "nesterov", "channels-last" });
        Assert.Equal((321, 6), (c.CropSize, c.BatchSize));   // kept, given
        Assert.False(c.Nesterov);                              // "--nesterov false" over a true
        Assert.True(c.FreezeBn);                               // not given: the base's
        Assert.False(c.ChannelsLast);                          // a nullable switch turned off
        Assert.Equal(321, baseConfig.CropSize);                // the base is untouched
        Assert.Equal(4, baseConfig.BatchSize);
    }
}
