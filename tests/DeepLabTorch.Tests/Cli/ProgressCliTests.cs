using System.Diagnostics;
using System.Text.RegularExpressions;
using DeepLabTorch.Data;
using DeepLabTorch.Tests.Inference;
using Xunit;

namespace DeepLabTorch.Tests.Cli;

/// <summary>predict's progress as a user sees it: plain lines when stderr is redirected, redraws on a terminal, nothing with --quiet.</summary>
public sealed class ProgressCliTests : IDisposable
{
    private readonly string _dir = InferenceTestUtil.TempDir("progress-cli");
    private readonly string _input;
    private readonly string _weights;

    public ProgressCliTests()
    {
        _input = Directory.CreateDirectory(Path.Combine(_dir, "in")).FullName;
        ImageCodec.WritePng(Path.Combine(_input, "a.png"), InferenceTestUtil.TestImage(40, 56, 1), 40, 56);
        ImageCodec.WritePng(Path.Combine(_input, "b.png"), InferenceTestUtil.TestImage(40, 56, 2), 40, 56);
        _weights = PredictVerbTests.SaveModel(_dir, 3, new[] { "background", "cat", "person" }, out var model);
        model.Dispose();
    }

    public void Dispose() => Directory.Delete(_dir, true);

    private string[] Predict(params string[] more) =>
        new[] { "predict", "--weights", _weights, "--input", _input, "--output", Path.Combine(_dir, "out"), "--device", "cpu", "--threads", "1" }
            .Concat(more).ToArray();

    [Fact]
    public void RedirectedStderrGetsPlainLinesAndQuietNone()
    {
        var (code, stdout, stderr) = CliRunner.Run(_dir, Predict());
        Assert.True(code == 0, stdout + stderr);
        Assert.DoesNotContain('\r', stderr);
        // Two images: a line at each half (each crosses a tenth), the last one complete.
        var lines = stderr.Split('\n').Where(l => l.StartsWith("predict [", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, lines.Count);
        Assert.Matches(@"^predict \[##########\.{10}\] 1/2 images [0-9.]+ images/s ETA \d+s$", lines[0]);
        Assert.Matches(@"^predict \[#{20}\] 2/2 images [0-9.]+ images/s ETA 0s$", lines[1]);
        Assert.Contains("predict: 2 image(s)", stdout);

        var quiet = CliRunner.Run(_dir, Predict("--quiet"));
        Assert.True(quiet.Code == 0, quiet.Stdout + quiet.Stderr);
        Assert.DoesNotContain("predict [", quiet.Stderr);
        Assert.Contains("predict: 2 image(s)", quiet.Stdout);
    }

    [LinuxFact(LinuxOnly.Terminal)]
    public void ATerminalGetsRedrawsThatFitAndTheSummaryOnALineOfItsOwn()
    {
        // A real terminal of 50 columns, through script(1), with CI unset.
        var (code, output) = CliRunner.RunInTerminal(_dir, 50, Predict());
        Assert.True(code == 0, output);
        var frames = output.Split('\r').Select(s => s.Split('\n')[0]).Where(s => s.StartsWith("predict [", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(frames);
        Assert.Contains("\rpredict [", output); // redrawn in place (a plain line would follow a "\n")
        Assert.All(frames, f => Assert.True(f.Length <= 49, $"{f.Length} columns: '{f}'"));
        Assert.StartsWith("predict [####################] 2/2 images", frames[^1]);
        // The bar's line is ended before the summary: it starts a line, not the bar's tail.
        Assert.Matches(new Regex(@"(^|\n)predict: 2 image\(s\)"), output);
    }
}
