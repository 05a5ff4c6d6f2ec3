using DeepLabTorch.Torch.Native;
using static DeepLabTorch.Torch.Native.NativeMethods;

namespace DeepLabTorch.Torch;

public static partial class torch
{
    /// <summary>
    /// torch.set_flush_denormal: treat denormal floats as zero on the CPU (process-wide). Returns false
    /// when the CPU cannot. Denormals can slow convolutions by orders of magnitude.
    /// </summary>
    public static bool set_flush_denormal(bool on)
    {
        var r = dlt_infer_set_flush_denormal((sbyte)(on ? 1 : 0));
        if (r < 0) Errors.Throw();
        return r == 1;
    }
}
