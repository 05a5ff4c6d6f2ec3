using static TorchSharp.torch;

namespace DeepLabTorch.Models.FaceParsing;

/// <summary>
/// What a real-time parsing network (BiSeNet, STDC-Seg) returns for training: the main logits, the
/// auxiliary heads' logits (all upsampled to the input size, as the references do), and STDC's detail
/// logits (one channel each, at the resolution the reference returns them; empty for BiSeNet).
/// In eval mode the networks' forward returns Main alone.
/// </summary>
internal sealed record ParsingOutputs(Tensor Main, IReadOnlyList<Tensor> Auxiliary, IReadOnlyList<Tensor> Detail) : IDisposable
{
    public void Dispose()
    {
        Main.Dispose();
        foreach (var t in Auxiliary) t.Dispose();
        foreach (var t in Detail) t.Dispose();
    }
}
