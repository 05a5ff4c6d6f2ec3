using System.Runtime.CompilerServices;
using DeepLabTorch.Torch.Native;

namespace DeepLabTorch;

internal static class AssemblyInit
{
    // This assembly P/Invokes the native library too (image codecs): give it the same resolver.
#pragma warning disable CA2255
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Init() => NativeLoader.RegisterFor(typeof(AssemblyInit).Assembly);
}
