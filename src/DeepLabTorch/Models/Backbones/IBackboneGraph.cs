using TorchSharp.Modules;

namespace DeepLabTorch.Models.Backbones;

/// <summary>
/// The operations a backbone writes itself into a dataflow graph with (the ONNX exporter implements it):
/// values are names, every call returns the name of its result. Declared here so that each backbone
/// describes its own graph and the exporter stays free of per-backbone code.
/// </summary>
internal interface IBackboneGraph
{
    /// <summary>conv followed by bn, as one convolution with the BatchNorm folded in.</summary>
    string ConvBn(string x, Conv2d conv, BatchNorm bn);
    string Relu(string x);
    string Relu6(string x);
    string Add(string a, string b);
    string MaxPool(string x, long kernel, long stride, long padding);
    /// <summary>Zero padding of the last two axes.</summary>
    string Pad(string x, long left, long right, long top, long bottom);
}
