using DeepLabTorch.Extensions;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;
using TensorElementType = Microsoft.ML.OnnxRuntime.Tensors.TensorElementType;

namespace DeepLabTorch.Inference;

/// <summary>
/// An exported model (deeplab export --format onnx) run by ONNX Runtime on the CPU. Each batch goes to
/// ONNX Runtime without a copy (the OrtValue points at the contiguous tensor's memory) and the logits
/// come back as a new TorchSharp tensor, so the Predictor's resizing and test-time augmentation apply
/// unchanged. Only logits models fit: [N,3,H,W] float32 in, [N,C,H,W] float32 out.
/// </summary>
internal sealed class OnnxLogitsEngine : ILogitsEngine, IDisposable
{
    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions = new();
    private readonly string[] _inputNames, _outputNames;

    /// <param name="path">The .onnx file.</param>
    /// <param name="intraOpThreads">ONNX Runtime's intra-op threads (--threads); null lets it use one per physical core.</param>
    /// <param name="configure">Changes to the session options before the session is made (bench infer engine=onnx tunes them).</param>
    public OnnxLogitsEngine(string path, int? intraOpThreads = null, Action<SessionOptions>? configure = null)
    {
        if (!File.Exists(path)) throw new UserException($"{path}: no such ONNX model file");
        if (intraOpThreads is < 1) throw new UserException($"--threads must be >= 1, got {intraOpThreads}");
        using var options = new SessionOptions
        {
            IntraOpNumThreads = intraOpThreads ?? 0,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        configure?.Invoke(options);
        try
        {
            _session = new InferenceSession(path, options);
        }
        catch (OnnxRuntimeException e)
        {
            throw new UserException($"{path}: ONNX Runtime cannot load it: {e.Message}", e);
        }
        try
        {
            NumClasses = CheckSignature(path, _session);
        }
        catch
        {
            _session.Dispose();
            throw;
        }
        _inputNames = new[] { _session.InputNames[0] };
        _outputNames = new[] { _session.OutputNames[0] };
        Path = path;
    }

    public string Path { get; }

    /// <summary>The class count the graph's output declares.</summary>
    public int NumClasses { get; }

    /// <summary>ONNX Runtime's CPU build: batches are handed over from CPU memory.</summary>
    public Device Device => CPU;

    /// <summary>The classes, or a message naming what the graph takes and gives, when it is not a logits model.</summary>
    private static int CheckSignature(string path, InferenceSession session)
    {
        if (session.InputMetadata.Count != 1 || session.OutputMetadata.Count < 1)
            throw new UserException($"{path}: expected one input and a logits output, the graph has {session.InputMetadata.Count} input(s) and {session.OutputMetadata.Count} output(s)");
        var (inName, input) = session.InputMetadata.First();
        var (outName, output) = session.OutputMetadata.First();
        const string hint = "predict needs a model exported without --with-preprocessing and --argmax";
        if (!input.IsTensor || input.ElementDataType != TensorElementType.Float || input.Dimensions.Length != 4 || input.Dimensions[1] != 3)
            throw new UserException($"{path}: input '{inName}' is {Describe(input)}, not float [N,3,H,W]; {hint}");
        if (!output.IsTensor || output.ElementDataType != TensorElementType.Float || output.Dimensions.Length != 4 || output.Dimensions[1] < 1)
            throw new UserException($"{path}: output '{outName}' is {Describe(output)}, not float logits [N,C,H,W] with a fixed C; {hint}");
        return output.Dimensions[1];
    }

    private static string Describe(NodeMetadata m)
    {
        if (!m.IsTensor) return "not a tensor";
        var dims = m.Dimensions.Select((d, i) => d >= 0 ? d.ToString(System.Globalization.CultureInfo.InvariantCulture)
            : m.SymbolicDimensions.Length > i && m.SymbolicDimensions[i].Length > 0 ? m.SymbolicDimensions[i] : "?");
        return $"{m.ElementDataType.ToString().ToLowerInvariant()} [{string.Join(",", dims)}]";
    }

    public unsafe Tensor Forward(Tensor batch)
    {
        using var scope = NewDisposeScope();
        // A contiguous NCHW float32 copy only when the batch is not one already (channels-last, a view, another device).
        var x = batch.to(ScalarType.Float32, CPU).contiguous();
        long bytes = x.numel() * sizeof(float);
        using var input = OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, TensorElementType.Float, x.shape, x.DataPtr(), bytes);
        using var results = _session.Run(_runOptions, _inputNames, new[] { input }, _outputNames);
        var y = results[0];
        var shape = y.GetTensorTypeAndShape().Shape;
        var data = y.GetTensorDataAsSpan<float>();
        var logits = empty(shape, ScalarType.Float32);
        if (data.Length != logits.numel())
            throw new InvalidOperationException($"ONNX Runtime returned {data.Length} values for shape [{string.Join(",", shape)}]");
        if (data.Length > 0) data.CopyTo(new Span<float>((void*)logits.DataPtr(), data.Length));
        GC.KeepAlive(x); // ONNX Runtime read x's memory through a raw pointer
        return logits.MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        _runOptions.Dispose();
        _session.Dispose();
    }
}
