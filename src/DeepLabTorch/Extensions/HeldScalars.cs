using TorchSharp;

namespace DeepLabTorch.Extensions;

/// <summary>
/// Constant Scalars held for the life of the process. A C# number passed where TorchSharp takes a
/// Scalar (<c>x.mul(255.0)</c>, <c>x.clamp(0, 1)</c>, <c>x + eps</c>) becomes a temporary native Scalar
/// that nothing references during the native call: a garbage collection started by another thread can
/// finalize it while libtorch is reading it. Use these, or a Scalar in a <c>using</c> declaration for
/// values known only at run time.
/// </summary>
public static class HeldScalars
{
    public static readonly Scalar Zero = 0.0.ToScalar();
    public static readonly Scalar One = 1.0.ToScalar();
    public static readonly Scalar Byte255 = 255.0.ToScalar();
}
