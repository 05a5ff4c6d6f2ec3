namespace DeepLabTorch.Export.Quantization;

/// <summary>How each activation's range is chosen from what the calibration images showed.</summary>
public enum CalibrationMethod
{
    /// <summary>The smallest and largest value seen.</summary>
    MinMax,
    /// <summary>|x| clipped at a percentile of its histogram (<see cref="Int8Options.Percentile"/>).</summary>
    Percentile,
    /// <summary>|x| clipped where the quantised histogram's KL divergence from the float one is least (TensorRT's method).</summary>
    Entropy,
}

/// <summary>The integer type of quantised activations (weights are always int8).</summary>
public enum ActivationType
{
    /// <summary>Unsigned, zero point anywhere in 0–255 (asymmetric ranges; usually the fastest in ONNX Runtime on x86).</summary>
    UInt8,
    /// <summary>Signed, zero point anywhere in −128–127.</summary>
    Int8,
}

/// <summary>What `export --quantize int8` needs besides the model.</summary>
/// <param name="CalibrationFolder">Images run through the float model to measure activation ranges.</param>
/// <param name="CalibrationCount">At most this many of them, in file-name order.</param>
/// <param name="KeepFloat">Layers (state_dict paths of convolutions, or prefixes ending at a dot) left in float32;
/// null keeps the defaults: the first convolution and the classifier.</param>
public sealed record Int8Options(
    string CalibrationFolder,
    int CalibrationCount = 32,
    CalibrationMethod Method = CalibrationMethod.MinMax,
    IReadOnlyList<string>? KeepFloat = null,
    ActivationType Activations = ActivationType.UInt8,
    double Percentile = 99.999)
{
    internal static CalibrationMethod ParseMethod(string text) => text.Trim().ToLowerInvariant() switch
    {
        "minmax" => CalibrationMethod.MinMax,
        "percentile" => CalibrationMethod.Percentile,
        "entropy" => CalibrationMethod.Entropy,
        _ => throw new UserException($"--calibration-method must be minmax, percentile or entropy, got '{text}'"),
    };

    internal static ActivationType ParseActivations(string text) => text.Trim().ToLowerInvariant() switch
    {
        "uint8" => ActivationType.UInt8,
        "int8" => ActivationType.Int8,
        _ => throw new UserException($"--activations must be uint8 or int8, got '{text}'"),
    };
}
