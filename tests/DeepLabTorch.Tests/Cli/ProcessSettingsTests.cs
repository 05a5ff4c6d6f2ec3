using DeepLabTorch.Cli;
using DeepLabTorch.Tests.TestSupport;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Cli;

/// <summary>A verb run in-process (as tests and host programs do) leaves the process's settings as it found them.</summary>
[Collection(LiveTensorCountCollection.Name)]
public class ProcessSettingsTests
{
    [Fact]
    public void AVerbRunInProcessPutsTheThreadCountBack()
    {
        using var pinned = new PinnedThreads(2);
        var err = new StringWriter();
        int code = Program.Run(["info", "--threads", "1"], new StringWriter(), err);
        Assert.True(code == 0, err.ToString());
        Assert.Equal(2, get_num_threads());

        // A failing verb too.
        code = Program.Run(["predict", "--weights", "/nonexistent/model.safetensors", "--input", "/nonexistent", "--output", "/tmp/x", "--threads", "1"],
            new StringWriter(), new StringWriter());
        Assert.NotEqual(0, code);
        Assert.Equal(2, get_num_threads());
    }
}
