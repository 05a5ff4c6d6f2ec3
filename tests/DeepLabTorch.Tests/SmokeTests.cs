using DeepLabTorch.Extensions;
using TorchSharp;
using Xunit;

namespace DeepLabTorch.Tests;

public class SmokeTests
{
    [Fact]
    public void FrameworkAssemblyReachesTheEngine()
    {
        using var t = torch.ones(2, 3);
        Assert.Equal(6.0, t.sum().ToDouble());
    }
}
