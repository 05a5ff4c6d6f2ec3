using DeepLabTorch.Torch;
using Xunit;
using static DeepLabTorch.Torch.torch;

namespace DeepLabTorch.Torch.Tests;

/// <summary>A fact that runs only where CUDA is available, and is reported as skipped elsewhere.</summary>
public sealed class CudaFactAttribute : FactAttribute
{
    public CudaFactAttribute()
    {
        if (!cuda.is_available()) Skip = "CUDA is not available on this machine (libtorch reports no CUDA device)";
    }
}

internal static class TestUtil
{
    public static Tensor T(double[] values, params long[] shape) => tensor(values, shape);

    public static void Near(double expected, double actual, double tol, string what = "")
    {
        Assert.True(Math.Abs(expected - actual) <= tol, $"{what}: expected {expected}, got {actual} (tol {tol})");
    }

    public static void AllNear(double[] expected, double[] actual, double tol, string what = "")
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) Near(expected[i], actual[i], tol, $"{what}[{i}]");
    }

    /// <summary>
    /// Compares the autograd gradient of f at x with central finite differences (float64).
    /// f must return a scalar tensor. x is a leaf that requires grad.
    /// </summary>
    public static void GradCheck(Func<Tensor, Tensor> f, Tensor x, double eps = 1e-6, double tol = 1e-5, string what = "")
    {
        using var scope = NewDisposeScope();
        Assert.Equal(ScalarType.Float64, x.dtype);
        x.grad = null;
        var y = f(x);
        y.backward();
        var analytic = x.grad!.ToArray<double>();
        var numeric = new double[analytic.Length];
        using (no_grad())
        {
            var span = x.AsSpan<double>();
            for (int i = 0; i < numeric.Length; i++)
            {
                var orig = span[i];
                span[i] = orig + eps;
                double plus = f(x).item<double>();
                span[i] = orig - eps;
                double minus = f(x).item<double>();
                span[i] = orig;
                numeric[i] = (plus - minus) / (2 * eps);
            }
        }
        for (int i = 0; i < numeric.Length; i++)
            Assert.True(Math.Abs(numeric[i] - analytic[i]) <= tol * Math.Max(1, Math.Abs(numeric[i])),
                $"{what} grad[{i}]: numeric {numeric[i]}, autograd {analytic[i]}");
    }
}
