using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Inference;

/// <summary>
/// What the Predictor needs of a network: logits [N,C,h',w'] for a normalized float32 batch [N,3,h,w].
/// Resizing, sliding windows and test-time augmentation stay in the Predictor, so every engine gets
/// the same preprocessing and the same outputs.
/// </summary>
internal interface ILogitsEngine
{
    /// <summary>Where the Predictor puts input batches (an engine may move them again).</summary>
    Device Device { get; }

    /// <summary>Logits for one batch. The result belongs to the caller's dispose scope.</summary>
    Tensor Forward(Tensor batch);
}

/// <summary>A TorchSharp module as the engine (the checkpoint path). The module stays the caller's to dispose.</summary>
internal sealed class TorchLogitsEngine : ILogitsEngine
{
    private readonly nn.Module<Tensor, Tensor> _model;

    public TorchLogitsEngine(nn.Module<Tensor, Tensor> model, Device? device = null)
    {
        _model = model;
        _model.eval();
        Device = device ?? CPU;
    }

    public Device Device { get; }

    /// <summary>A bfloat16 model (--precision bf16) gets its input in bfloat16 and gives float32 logits back.</summary>
    public Tensor Forward(Tensor batch) => _model.ForwardFloat32(batch);
}
