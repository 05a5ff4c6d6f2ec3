using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Extensions;

/// <summary>
/// PyTorch's state_dict semantics on TorchSharp modules. TorchSharp's own state_dict lists every
/// parameter before every buffer; checkpoints, exports and tests use StateDictInOrder instead. Loading
/// goes through Checkpoints.StateDictLoader (TorchSharp's load_state_dict broadcasts mismatched shapes).
/// </summary>
internal static class ModuleExtensions
{
    /// <summary>Parameters and persistent buffers in PyTorch's order: each module's own parameters, its own buffers, then its children, depth-first.</summary>
    public static Dictionary<string, Tensor> StateDictInOrder(this nn.Module module)
    {
        var result = new Dictionary<string, Tensor>();
        Collect(module, "", result);
        return result;
    }

    private static void Collect(nn.Module m, string prefix, Dictionary<string, Tensor> into)
    {
        foreach (var (n, p) in m.named_parameters(recurse: false)) into.TryAdd(prefix + n, p);
        foreach (var (n, b) in m.named_buffers(recurse: false, include_nonpersistent: false)) into.TryAdd(prefix + n, b);
        foreach (var (n, c) in m.named_children()) Collect(c, prefix + n + ".", into);
    }

    /// <summary>The submodule at a dotted path ("backbone.features.3"), or null.</summary>
    public static nn.Module? GetSubmodule(this nn.Module module, string path)
    {
        var current = module;
        foreach (var part in path.Split('.', StringSplitOptions.RemoveEmptyEntries))
        {
            var next = current.named_children().FirstOrDefault(c => c.name == part).module;
            if (next is null) return null;
            current = next;
        }
        return current;
    }

    /// <summary>
    /// The module's forward on a batch in the module's own floating-point type (a bfloat16 model gets a
    /// bfloat16 input), with float32 logits back: argmax, softmax and every output work in float32.
    /// </summary>
    public static Tensor ForwardFloat32(this nn.Module<Tensor, Tensor> module, Tensor batch)
    {
        var dtype = module.parameters().FirstOrDefault()?.dtype ?? ScalarType.Float32;
        if (dtype == batch.dtype && dtype == ScalarType.Float32) return module.call(batch);
        using var input = batch.to(dtype);
        using var output = module.call(input);
        return output.to(ScalarType.Float32);
    }

    /// <summary>
    /// Stores every convolution weight channels-last (NHWC strides), which oneDNN and cuDNN prefer.
    /// The weights become new Parameter objects, so build an optimizer only afterwards.
    /// </summary>
    public static T ToChannelsLast<T>(this T module) where T : nn.Module
    {
        using var _ = no_grad();
        foreach (var m in module.modules().Prepend(module))
            if (m is Conv2d conv && !conv.weight.IsChannelsLast())
            {
                var cl = conv.weight.ContiguousChannelsLast();
                conv.weight = new Parameter(cl, conv.weight.requires_grad);
            }
        return module;
    }
}
