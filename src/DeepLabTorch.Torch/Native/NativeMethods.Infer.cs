using System.Runtime.InteropServices;

namespace DeepLabTorch.Torch.Native;

internal static partial class NativeMethods
{
    [DllImport(Lib)] internal static extern int dlt_infer_set_flush_denormal(sbyte on);
}
