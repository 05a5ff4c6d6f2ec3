using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Inference;

/// <summary>Small networks with known weights, a Python runner and a test-side .npy reader.</summary>
internal static partial class InferenceTestUtil
{
    public static string RepoRoot => global::DeepLabTorch.Tests.Python.RepoRoot;

    public static string TempDir(string tag) => global::DeepLabTorch.Tests.Python.NewTempDir("infer-" + tag);

    /// <summary>Runs Debian's python3 on a script in tests/reference (or at a path); returns stdout; a non-zero exit throws with stderr.</summary>
    public static string Python(string script, params string[] args)
    {
        var path = script.Contains('/') ? script : Path.Combine(RepoRoot, "tests", "reference", script);
        return global::DeepLabTorch.Tests.Python.RunProcess(global::DeepLabTorch.Tests.Python.Exe, new[] { path }.Concat(args).ToArray(), timeoutSeconds: 600);
    }

    /// <summary>Runs python3 -c CODE with args.</summary>
    public static string PythonCode(string code, params string[] args)
    {
        var file = Path.Combine(Path.GetTempPath(), $"dlt-infer-{Guid.NewGuid():N}.py");
        File.WriteAllText(file, code);
        try { return Python(file, args); }
        finally { File.Delete(file); }
    }

    /// <summary>An .npy file as (shape, values as double), for '&lt;f4', '&lt;f8', '|u1' arrays in C order.</summary>
    public static (long[] Shape, double[] Values) ReadNpy(string path)
    {
        var bytes = File.ReadAllBytes(path);
        Assert.Equal(0x93, bytes[0]);
        Assert.Equal("NUMPY", Encoding.ASCII.GetString(bytes, 1, 5));
        int major = bytes[6];
        int hlen = major == 1 ? BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8)) : (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8));
        int start = major == 1 ? 10 : 12;
        var header = Encoding.ASCII.GetString(bytes, start, hlen);
        var descr = DescrRe().Match(header).Groups[1].Value;
        Assert.Contains("'fortran_order': False", header);
        var shapeText = ShapeRe().Match(header).Groups[1].Value;
        var shape = shapeText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(long.Parse).ToArray();
        long n = shape.Aggregate(1L, (a, b) => a * b);
        var data = bytes.AsSpan(start + hlen);
        var values = new double[n];
        for (int i = 0; i < n; i++)
            values[i] = descr switch
            {
                "<f4" => BinaryPrimitives.ReadSingleLittleEndian(data[(4 * i)..]),
                "<f8" => BinaryPrimitives.ReadDoubleLittleEndian(data[(8 * i)..]),
                "|u1" => data[i],
                _ => throw new NotSupportedException("npy dtype " + descr),
            };
        return (shape, values);
    }

    [GeneratedRegex(@"'descr': '([^']+)'")] private static partial Regex DescrRe();
    [GeneratedRegex(@"'shape': \(([^)]*)\)")] private static partial Regex ShapeRe();

    /// <summary>
    /// Sets every parameter from System.Random (uniform ±0.5), leaving libtorch's global generator alone
    /// so tests running in parallel do not disturb each other's seeds.
    /// </summary>
    public static void Fill(nn.Module m, int seed)
    {
        var rnd = new Random(seed);
        using var _ = no_grad();
        foreach (var p in m.parameters())
        {
            var v = new float[p.numel()];
            for (int i = 0; i < v.Length; i++) v[i] = (float)(rnd.NextDouble() - 0.5);
            using var t = tensor(v, p.shape);
            p.copy_(t);
        }
    }

    /// <summary>A [N,C,H,W] float32 tensor of standard-normal-ish values from System.Random.</summary>
    public static Tensor RandomTensor(long[] shape, int seed)
    {
        var rnd = new Random(seed);
        var v = new float[shape.Aggregate(1L, (a, b) => a * b)];
        for (int i = 0; i < v.Length; i++) v[i] = (float)((rnd.NextDouble() + rnd.NextDouble() + rnd.NextDouble() - 1.5) * 2);
        return tensor(v, shape);
    }

    /// <summary>A deterministic RGB image with some structure (gradients and a block).</summary>
    public static byte[] TestImage(int h, int w, int seed = 0)
    {
        var rgb = new byte[h * w * 3];
        var rnd = new Random(seed);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int i = 3 * (y * w + x);
                bool block = y >= h / 4 && y < 3 * h / 4 && x >= w / 3 && x < 2 * w / 3;
                rgb[i] = (byte)(block ? 220 : x * 255 / Math.Max(1, w - 1));
                rgb[i + 1] = (byte)(block ? 40 : y * 255 / Math.Max(1, h - 1));
                rgb[i + 2] = (byte)rnd.Next(0, 256);
            }
        return rgb;
    }
}

/// <summary>conv3x3(3→4, pad 1) → ReLU → conv1x1(4→C): a small, position-dependent network with known weights.</summary>
internal sealed class TinyNet : nn.Module<Tensor, Tensor>
{
    public readonly Conv2d conv1;
    public readonly Conv2d conv2;

    public TinyNet(int classes, int seed = 7) : base(nameof(TinyNet))
    {
        conv1 = nn.Conv2d(3, 4, 3, padding: 1);
        conv2 = nn.Conv2d(4, classes, 1);
        RegisterComponents();
        InferenceTestUtil.Fill(this, seed);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return conv2.forward(conv1.forward(x).relu()).MoveToOuterDisposeScope();
    }
}

/// <summary>A 1x1 convolution: every pixel on its own, so sliding windows must agree with the whole image.</summary>
internal sealed class PointwiseNet : nn.Module<Tensor, Tensor>
{
    public readonly Conv2d conv;

    public PointwiseNet(int classes, int seed = 3) : base(nameof(PointwiseNet))
    {
        conv = nn.Conv2d(3, classes, 1);
        RegisterComponents();
        InferenceTestUtil.Fill(this, seed);
    }

    public override Tensor forward(Tensor x) => conv.forward(x);
}

/// <summary>Returns the same logits [1,C,H,W] for any input of that size: a "model" with a known mask.</summary>
internal sealed class FixedLogitsNet : nn.Module<Tensor, Tensor>
{
    public readonly Tensor logits;

    public FixedLogitsNet(Tensor logits) : base(nameof(FixedLogitsNet))
    {
        this.logits = logits;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        if (x.size(2) != logits.size(2) || x.size(3) != logits.size(3))
            throw new ArgumentException("FixedLogitsNet got a different size");
        return logits.expand(x.size(0), logits.size(1), logits.size(2), logits.size(3)).contiguous();
    }
}
