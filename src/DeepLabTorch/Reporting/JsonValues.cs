using System.Globalization;
using System.Text.Json;
using DeepLabTorch.Evaluation;

namespace DeepLabTorch.Reporting;

/// <summary>The JSON conventions of metrics.jsonl and --json output: non-finite numbers are null.</summary>
internal static class JsonValues
{
    public static void Number(Utf8JsonWriter w, string key, double v)
    {
        if (double.IsFinite(v)) w.WriteNumber(key, v);
        else w.WriteNull(key);
    }

    /// <summary>Writes one loosely typed value: null, string, bool, integer, float/double or double[].</summary>
    public static void Write(Utf8JsonWriter w, string key, object? value)
    {
        switch (value)
        {
            case null: w.WriteNull(key); break;
            case string s: w.WriteString(key, s); break;
            case bool b: w.WriteBoolean(key, b); break;
            case int i: w.WriteNumber(key, i); break;
            case long l: w.WriteNumber(key, l); break;
            case double d: Number(w, key, d); break;
            case float f: Number(w, key, f); break;
            case double[] arr:
                w.WriteStartArray(key);
                foreach (var x in arr)
                {
                    if (double.IsFinite(x)) w.WriteNumberValue(x);
                    else w.WriteNullValue();
                }
                w.WriteEndArray();
                break;
            default: w.WriteString(key, Convert.ToString(value, CultureInfo.InvariantCulture)); break;
        }
    }

    /// <summary>mIoU, pixel accuracy, mean class accuracy, FWIoU, then per-class IoU (and accuracy and F1, with the mean F1 over classes 1..) by class name.</summary>
    public static void Metrics(Utf8JsonWriter w, SegmentationMetrics m, bool classAccuracy, Action<Utf8JsonWriter>? beforeClasses = null)
    {
        Number(w, "miou", m.MeanIoU);
        Number(w, "pixel_acc", m.PixelAccuracy);
        Number(w, "mean_class_acc", m.MeanClassAccuracy);
        Number(w, "fwiou", m.FrequencyWeightedIoU);
        beforeClasses?.Invoke(w);
        w.WriteStartObject("class_iou");
        for (var k = 0; k < m.ClassIoU.Length; k++) Number(w, m.ClassNames[k], m.ClassIoU[k]);
        w.WriteEndObject();
        if (!classAccuracy) return;
        w.WriteStartObject("class_acc");
        for (var k = 0; k < m.ClassAccuracy.Length; k++) Number(w, m.ClassNames[k], m.ClassAccuracy[k]);
        w.WriteEndObject();
        // F1 per class, as face parsing reports each part; the mean over the parts leaves class 0 out.
        Number(w, "mean_f1", m.MeanF1WithoutBackground);
        w.WriteStartObject("class_f1");
        for (var k = 0; k < m.ClassF1.Length; k++) Number(w, m.ClassNames[k], m.ClassF1[k]);
        w.WriteEndObject();
    }
}
