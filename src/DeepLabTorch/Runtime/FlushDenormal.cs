using System.Runtime.InteropServices;

namespace DeepLabTorch.Runtime;

/// <summary>
/// torch.set_flush_denormal, which TorchSharp does not bind: libtorch's own
/// at::globalContext().setFlushDenormal(bool), called through its exported C++ symbols (x86-64
/// System V: the Context* is the first argument). Denormal floats run many times slower; with random
/// weights in eval mode activations sink into them, so the benchmarks flush them on both sides.
/// </summary>
internal static unsafe class FlushDenormal
{
    private const string GlobalContext = "_ZN2at13globalContextEv";
    private const string SetFlushDenormal = "_ZN2at7Context16setFlushDenormalEb";

    /// <summary>Sets the calling thread's flush-to-zero mode; false when the CPU or platform cannot.</summary>
    public static bool Set(bool on)
    {
        TorchRuntime.EnsureLoaded();
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64) return false;
        if (!NativeLibrary.TryLoad("libtorch_cpu.so", typeof(TorchSharp.torch).Assembly, null, out var lib)) return false;
        if (!NativeLibrary.TryGetExport(lib, GlobalContext, out var ctxFn) || !NativeLibrary.TryGetExport(lib, SetFlushDenormal, out var setFn))
            return false;
        var context = ((delegate* unmanaged<IntPtr>)ctxFn)();
        return ((delegate* unmanaged<IntPtr, byte, byte>)setFn)(context, on ? (byte)1 : (byte)0) != 0;
    }
}
