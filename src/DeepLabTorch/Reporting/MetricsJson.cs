using System.Text;
using System.Text.Json;
using DeepLabTorch.Evaluation;

namespace DeepLabTorch.Reporting;

/// <summary>Metrics as one JSON document (eval --json, score --json); NaN is null.</summary>
public static class MetricsJson
{
    public static string Serialize(SegmentationMetrics m, IReadOnlyDictionary<string, object?>? extra = null)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            if (extra != null)
                foreach (var (k, v) in extra)
                {
                    switch (v)
                    {
                        case null: w.WriteNull(k); break;
                        case string s: w.WriteString(k, s); break;
                        case bool b: w.WriteBoolean(k, b); break;
                        case int i: w.WriteNumber(k, i); break;
                        case long l: w.WriteNumber(k, l); break;
                        case double d: Num(w, k, d); break;
                        case double[] arr:
                            w.WriteStartArray(k);
                            foreach (var x in arr) w.WriteNumberValue(x);
                            w.WriteEndArray();
                            break;
                        default: w.WriteString(k, v.ToString()); break;
                    }
                }
            Num(w, "miou", m.MeanIoU);
            Num(w, "pixel_acc", m.PixelAccuracy);
            Num(w, "mean_class_acc", m.MeanClassAccuracy);
            Num(w, "fwiou", m.FrequencyWeightedIoU);
            w.WriteStartObject("class_iou");
            for (var k = 0; k < m.ClassIoU.Length; k++) Num(w, m.ClassNames[k], m.ClassIoU[k]);
            w.WriteEndObject();
            w.WriteStartObject("class_acc");
            for (var k = 0; k < m.ClassAccuracy.Length; k++) Num(w, m.ClassNames[k], m.ClassAccuracy[k]);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    private static void Num(Utf8JsonWriter w, string key, double v)
    {
        if (double.IsFinite(v)) w.WriteNumber(key, v);
        else w.WriteNull(key);
    }
}
