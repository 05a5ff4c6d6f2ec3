using TorchSharp;

namespace DeepLabTorch.Extensions;

/// <summary>
/// Constant Scalars held for the life of the process. A C# number passed where TorchSharp takes a
/// Scalar (<c>x.mul(255.0)</c>, <c>x.clamp(0, 1)</c>, <c>x + eps</c>) becomes a temporary native Scalar
/// that nothing references during the native call: a garbage collection started by another thread can
/// finalize it while libtorch is reading it. Use these, or a Scalar in a <c>using</c> declaration for
/// values known only at run time.
/// </summary>
internal static class HeldScalars
{
    public static readonly Scalar Zero = 0.0.ToScalar();
    public static readonly Scalar One = 1.0.ToScalar();
    public static readonly Scalar Byte255 = 255.0.ToScalar();

    /// <summary>An integral 1: the alpha of a sum, which libtorch accepts for every dtype but bool (a floating alpha is refused for integer tensors).</summary>
    public static readonly Scalar IntegralOne = 1L.ToScalar();
}

/// <summary>
/// Tensor sums without TorchSharp's hidden Scalar: <c>a + b</c>, <c>a.add(b)</c> and <c>a.add_(b)</c> (b a
/// Tensor or a Scalar) all call <c>add(b, 1)</c>, whose implicit Scalar 1 is exposed to the finalizer like any other (see HeldScalars).
/// </summary>
internal static class HeldScalarSums
{
    /// <summary>a + b, out of place.</summary>
    public static torch.Tensor Plus(this torch.Tensor a, torch.Tensor b) => a.add(b, HeldScalars.IntegralOne);

    /// <summary>a += b, in place; returns a.</summary>
    public static torch.Tensor PlusInPlace(this torch.Tensor a, torch.Tensor b) => a.add_(b, HeldScalars.IntegralOne);

    /// <summary>a + s, out of place (TorchSharp's add(s) is add(s, 1), with an implicit 1).</summary>
    public static torch.Tensor Plus(this torch.Tensor a, Scalar s) => a.add(s, HeldScalars.IntegralOne);

    /// <summary>a += s, in place; returns a.</summary>
    public static torch.Tensor PlusInPlace(this torch.Tensor a, Scalar s) => a.add_(s, HeldScalars.IntegralOne);
}
