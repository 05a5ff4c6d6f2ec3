using System.Text;
using System.Text.Json;
using DeepLabTorch.Evaluation;

namespace DeepLabTorch.Reporting;

/// <summary>Metrics as one JSON document (eval --json, score --json); NaN is null.</summary>
internal static class MetricsJson
{
    public static string Serialize(SegmentationMetrics m, IReadOnlyDictionary<string, object?>? extra = null)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            if (extra != null)
                foreach (var (k, v) in extra) JsonValues.Write(w, k, v);
            JsonValues.Metrics(w, m, classAccuracy: true);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }
}
