using System.Runtime.CompilerServices;

namespace DeepLabTorch.Runtime;

internal static class AssemblyInit
{
    // Load TorchSharp's natives our way before any TorchSharp call (see TorchRuntime).
#pragma warning disable CA2255
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Init() => TorchRuntime.Preload();
}
