namespace DeepLabTorch.Export.Quantization;

/// <summary>
/// The arithmetic of the int8 export, in one place: weights per output channel, symmetric int8 (zero point 0,
/// range ±127 so that −w and w quantise alike); activations per tensor, asymmetric (a zero point, so a ReLU's
/// [0, max] uses every level); biases int32 at the input scale times the weight scale, as QLinearConv expects.
/// Rounding is half to even, as ONNX's QuantizeLinear rounds.
/// </summary>
internal static class QuantMath
{
    public const int WeightMax = 127;

    /// <summary>
    /// Per output channel: scale = max|w| / 127 (1 for an all-zero channel, which any scale represents exactly) and
    /// q = clamp(round(w / scale), −127, 127). <paramref name="weights"/> is [channels, …] flattened row-major.
    /// </summary>
    public static (float[] Scales, sbyte[] Values) PerChannelSymmetric(ReadOnlySpan<float> weights, int channels)
    {
        if (channels <= 0 || weights.Length % channels != 0)
            throw new ArgumentException($"{weights.Length} weights do not split into {channels} channels");
        int per = weights.Length / channels;
        var scales = new float[channels];
        var values = new sbyte[weights.Length];
        for (int c = 0; c < channels; c++)
        {
            var w = weights.Slice(c * per, per);
            float absMax = 0;
            foreach (var v in w) absMax = Math.Max(absMax, Math.Abs(v));
            float s = absMax > 0 ? absMax / WeightMax : 1f;
            scales[c] = s;
            for (int i = 0; i < per; i++)
                values[c * per + i] = (sbyte)Math.Clamp(MathF.Round(w[i] / s, MidpointRounding.ToEven), -WeightMax, WeightMax);
        }
        return (scales, values);
    }

    /// <summary>
    /// The scale and zero point that map [min, max] (widened to hold 0, so zero padding is exact) onto
    /// [qmin, qmax]: scale = (max − min) / (qmax − qmin), zero point = round(qmin − min / scale).
    /// </summary>
    public static (float Scale, int ZeroPoint) Asymmetric(float min, float max, int qmin, int qmax)
    {
        float lo = Math.Min(min, 0f), hi = Math.Max(max, 0f);
        float scale = (hi - lo) / (qmax - qmin);
        if (!(scale > 0) || float.IsInfinity(scale)) return (1f, Math.Clamp(0, qmin, qmax));
        int zp = (int)Math.Clamp(MathF.Round(qmin - lo / scale, MidpointRounding.ToEven), qmin, qmax);
        return (scale, zp);
    }

    /// <summary>Biases as int32 at scale inputScale × weightScales[c], zero point 0.</summary>
    public static (float[] Scales, int[] Values) Bias(ReadOnlySpan<float> bias, float inputScale, float[] weightScales)
    {
        if (bias.Length != weightScales.Length) throw new ArgumentException($"{bias.Length} biases for {weightScales.Length} channels");
        var scales = new float[bias.Length];
        var values = new int[bias.Length];
        for (int c = 0; c < bias.Length; c++)
        {
            scales[c] = inputScale * weightScales[c];
            double q = Math.Round(bias[c] / (double)scales[c], MidpointRounding.ToEven);
            values[c] = (int)Math.Clamp(q, int.MinValue, int.MaxValue);
        }
        return (scales, values);
    }
}
