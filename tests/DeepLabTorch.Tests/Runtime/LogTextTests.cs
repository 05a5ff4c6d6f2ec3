using System.Globalization;
using DeepLabTorch.Cli.Logging;
using DeepLabTorch.Cli.Progress;
using DeepLabTorch.Runtime;
using Microsoft.Extensions.Logging;
using Xunit;

namespace DeepLabTorch.Tests.Runtime;

/// <summary>
/// A message template renders the same text on the console and in train.log, with invariant numbers under any
/// culture (Microsoft.Extensions.Logging formats invariantly; Serilog's file sink is given the invariant culture),
/// and text with braces passed as a value stays as it is.
/// </summary>
public class LogTextTests
{
    [Fact]
    public void ConsoleAndTrainLogShowTheSameInvariantText()
    {
        using var dir = new TempDir();
        var saved = CultureInfo.CurrentCulture;
        var console = new StringWriter();
        try
        {
            // A culture with a decimal comma (where the runtime has culture data; elsewhere this is the invariant check alone).
            CultureInfo.CurrentCulture = CultureInfo.GetCultureInfo("de-DE");
            using (var outer = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Information).AddProvider(new ConsoleSink(console, line: new TerminalLine()))))
            using (var run = new RunLoggerFactory(outer, dir["train.log"]))
            {
                var log = run.CreateLogger(LogCategories.Training);
                log.LogInformation("epoch {Epoch}/{Epochs}: mean loss {Loss:0.0000}, {ImagesPerSecond:0.0} img/s", 1, 2, 0.5, 12.34);
                log.LogDebug("resolved config: {Config}", """{ "lr": 0.007 }""");
            }
        }
        finally
        {
            CultureInfo.CurrentCulture = saved;
        }
        Assert.Equal("epoch 1/2: mean loss 0.5000, 12.3 img/s\n", console.ToString().Replace("\r\n", "\n"));
        var file = File.ReadAllLines(dir["train.log"]);
        Assert.Equal(2, file.Length);
        Assert.EndsWith("INF DeepLabTorch.Training: epoch 1/2: mean loss 0.5000, 12.3 img/s", file[0]);
        Assert.EndsWith("""DBG DeepLabTorch.Training: resolved config: { "lr": 0.007 }""", file[1]);
    }
}
