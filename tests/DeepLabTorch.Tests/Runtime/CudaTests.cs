using DeepLabTorch.Models;
using DeepLabTorch.Runtime;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Runtime;

/// <summary>A fact that reports itself skipped, with the reason, where TorchSharp sees no CUDA device.</summary>
public sealed class CudaFactAttribute : FactAttribute
{
    public CudaFactAttribute()
    {
        TorchRuntime.EnsureLoaded();
        if (!cuda.is_available())
            Skip = "CUDA is not available (CPU backend or no GPU): build with -p:TorchBackend=cuda on a GPU machine to run this";
    }
}

public class CudaTests
{
    /// <summary>The same model on the GPU gives the CPU's logits, and the engine set-up picks the GPU by default.</summary>
    [CudaFact]
    public void ModelOnCudaMatchesTheCpu()
    {
        manual_seed(5);
        using var model = new DeepLabV3Plus(new ModelConfig("mobilenet", 16, 4));
        model.eval();
        using var x = randn(1, 3, 65, 65);
        using var _ = inference_mode();
        using var cpu = model.forward(x);
        var device = Engine.ResolveDevice(null);
        Assert.Equal(DeviceType.CUDA, device.type);
        model.to(device);
        using var xg = x.to(device);
        using var gpu = model.forward(xg).cpu();
        using var diff = (gpu - cpu).abs().max();
        Assert.True(diff.item<float>() < 1e-3f, $"CUDA logits differ from the CPU's by {diff.item<float>()}");
    }
}
