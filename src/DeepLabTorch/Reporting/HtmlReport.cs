using System.Globalization;
using System.Net;
using System.Text;
using DeepLabTorch.Evaluation;

namespace DeepLabTorch.Reporting;

/// <summary>One validation example for the report: PNG bytes of the input, ground truth and prediction.</summary>
internal sealed record ReportImage(string Id, byte[] InputPng, byte[] TruthPng, byte[] PredictionPng);

/// <summary>Everything report.html shows.</summary>
internal sealed record ReportData(
    string Title,
    IReadOnlyList<(string Key, string Value)> Summary,
    IReadOnlyList<(long Step, double Loss)> Loss,
    IReadOnlyList<(int Epoch, double MeanIoU)> MeanIoU,
    SegmentationMetrics? Metrics,
    IReadOnlyList<ReportImage> Images,
    int? MetricsEpoch = null);

/// <summary>
/// A single self-contained HTML file: inline SVG curves (training loss per logged step, validation
/// mIoU per epoch), the per-class IoU table and a grid of input / ground truth / prediction images
/// as PNG data URIs. No scripts, no external files.
/// </summary>
internal static class HtmlReport
{
    public static void Write(string path, ReportData data)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir != null) Directory.CreateDirectory(dir);
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, Render(data), new UTF8Encoding(false));
        File.Move(tmp, path, overwrite: true);
    }

    public static string Render(ReportData d)
    {
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>").Append(E(d.Title)).Append("</title>\n<style>")
          .Append("body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}")
          .Append("h1{font-size:22px}h2{font-size:17px;margin-top:28px}")
          .Append("table{border-collapse:collapse;font-size:13px}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}")
          .Append("td.n{text-align:right;font-variant-numeric:tabular-nums}.bar{background:#4a7bd0;height:10px}")
          .Append(".charts{display:flex;flex-wrap:wrap;gap:24px}.grid{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:6px;align-items:start}")
          .Append(".grid img{width:100%;image-rendering:pixelated;border:1px solid #ccc}.grid div{font-size:12px;color:#555}")
          .Append("</style></head><body>\n");
        sb.Append("<h1>").Append(E(d.Title)).Append("</h1>\n");

        if (d.Summary.Count > 0)
        {
            sb.Append("<table>");
            foreach (var (k, v) in d.Summary) sb.Append("<tr><th>").Append(E(k)).Append("</th><td>").Append(E(v)).Append("</td></tr>");
            sb.Append("</table>\n");
        }

        sb.Append("<h2>Curves</h2><div class=\"charts\">");
        var loss = d.Loss.Select(p => ((double)p.Step, p.Loss)).ToList();
        sb.Append(Chart("training loss per iteration (smoothed line: moving average)", "step", loss, 0, null, Smooth(loss)));
        sb.Append(Chart("validation mIoU", "epoch", d.MeanIoU.Select(p => ((double)p.Epoch, p.MeanIoU)).ToList(), 0, 1));
        sb.Append("</div>\n");

        if (d.Metrics is { } m)
        {
            sb.Append("<h2>Per-class IoU").Append(d.MetricsEpoch is int me ? Inv($" (validation after epoch {me})") : "").Append("</h2>\n<p>")
              .Append(Inv($"mIoU {P(m.MeanIoU)} · pixel accuracy {P(m.PixelAccuracy)} · mean class accuracy {P(m.MeanClassAccuracy)} · FWIoU {P(m.FrequencyWeightedIoU)}"))
              .Append("</p>\n<table><tr><th>class</th><th>IoU</th><th></th><th>accuracy</th><th>GT pixels</th></tr>");
            for (var k = 0; k < m.ClassIoU.Length; k++)
            {
                var iou = m.ClassIoU[k];
                var w = double.IsNaN(iou) ? 0 : Math.Round(iou * 200);
                sb.Append("<tr><td>").Append(E(m.ClassNames[k])).Append("</td><td class=\"n\">").Append(P(iou))
                  .Append(Inv($"</td><td><div class=\"bar\" style=\"width:{w}px\"></div></td><td class=\"n\">")).Append(P(m.ClassAccuracy[k]))
                  .Append("</td><td class=\"n\">").Append(m.GroundTruthPixels[k].ToString(CultureInfo.InvariantCulture)).Append("</td></tr>");
            }
            sb.Append("</table>\n");
        }

        if (d.Images.Count > 0)
        {
            sb.Append("<h2>Validation images</h2>\n<div class=\"grid\"><div>input</div><div>ground truth</div><div>prediction</div>");
            foreach (var img in d.Images)
            {
                foreach (var (png, what) in new[] { (img.InputPng, "input"), (img.TruthPng, "ground truth"), (img.PredictionPng, "prediction") })
                    sb.Append("<img alt=\"").Append(E($"{img.Id} {what}")).Append("\" src=\"data:image/png;base64,").Append(Convert.ToBase64String(png)).Append("\">");
            }
            sb.Append("</div>\n");
        }
        sb.Append("<p style=\"color:#888;font-size:12px\">Generated ").Append(E(DateTime.Now.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture))).Append(" by DeepLabTorch.</p>\n");
        sb.Append("</body></html>\n");
        return sb.ToString();
    }

    /// <summary>A line chart as inline SVG with axis labels at the data range; empty data gives a placeholder.</summary>
    /// <summary>
    /// An exponential moving average (weight 0.9, bias-corrected as TensorBoard's), so the trend shows
    /// through the per-iteration noise while the raw points stay what metrics.jsonl holds.
    /// </summary>
    public static List<(double X, double Y)> Smooth(IReadOnlyList<(double X, double Y)> points, double weight = 0.9)
    {
        var result = new List<(double, double)>(points.Count);
        double avg = 0, norm = 0;
        foreach (var (x, y) in points)
        {
            if (!double.IsFinite(y)) continue;
            avg = weight * avg + (1 - weight) * y;
            norm = weight * norm + (1 - weight);
            result.Add((x, avg / norm));
        }
        return result;
    }

    /// <summary>An SVG line chart; with smoothed points, the raw line is drawn light (class "raw") and the smoothed one over it (class "smoothed").</summary>
    public static string Chart(string title, string xLabel, IReadOnlyList<(double X, double Y)> points, double? yMin, double? yMax,
        IReadOnlyList<(double X, double Y)>? smoothed = null)
    {
        const int w = 480, h = 260, left = 52, right = 12, top = 24, bottom = 36;
        var sb = new StringBuilder();
        sb.Append(Inv($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{E(title)}\">"));
        sb.Append(Inv($"<text x=\"{w / 2}\" y=\"16\" text-anchor=\"middle\" font-size=\"13\">{E(title)}</text>"));
        var pts = points.Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).ToList();
        if (pts.Count == 0)
        {
            sb.Append(Inv($"<text x=\"{w / 2}\" y=\"{h / 2}\" text-anchor=\"middle\" font-size=\"12\" fill=\"#888\">no data</text></svg>"));
            return sb.ToString();
        }
        double x0 = pts.Min(p => p.X), x1 = pts.Max(p => p.X);
        double y0 = yMin ?? pts.Min(p => p.Y), y1 = yMax ?? pts.Max(p => p.Y);
        if (yMax is null) y1 = Math.Max(y1, pts.Max(p => p.Y));
        if (x1 == x0) { x0 -= 1; x1 += 1; }
        if (y1 == y0) { y1 = y0 + 1; }
        double X(double x) => left + (x - x0) / (x1 - x0) * (w - left - right);
        double Y(double y) => h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom);
        sb.Append(Inv($"<rect x=\"{left}\" y=\"{top}\" width=\"{w - left - right}\" height=\"{h - top - bottom}\" fill=\"none\" stroke=\"#bbb\"/>"));
        for (var i = 0; i <= 4; i++)
        {
            var yv = y0 + (y1 - y0) * i / 4;
            sb.Append(Inv($"<line x1=\"{left}\" x2=\"{w - right}\" y1=\"{Y(yv):0.#}\" y2=\"{Y(yv):0.#}\" stroke=\"#eee\"/>"));
            sb.Append(Inv($"<text x=\"{left - 4}\" y=\"{Y(yv) + 4:0.#}\" text-anchor=\"end\" font-size=\"10\">{yv:0.###}</text>"));
        }
        sb.Append(Inv($"<text x=\"{left}\" y=\"{h - 18}\" font-size=\"10\">{x0:0.##}</text>"));
        sb.Append(Inv($"<text x=\"{w - right}\" y=\"{h - 18}\" text-anchor=\"end\" font-size=\"10\">{x1:0.##}</text>"));
        sb.Append(Inv($"<text x=\"{(left + w - right) / 2}\" y=\"{h - 6}\" text-anchor=\"middle\" font-size=\"11\">{E(xLabel)}</text>"));
        var poly = string.Join(" ", pts.Select(p => Inv($"{X(p.X):0.##},{Y(p.Y):0.##}")));
        if (smoothed is not null)
        {
            sb.Append("<polyline class=\"raw\" fill=\"none\" stroke=\"#a9c1ec\" stroke-width=\"1\" points=\"").Append(poly).Append("\"/>");
            var line = string.Join(" ", smoothed.Select(p => Inv($"{X(p.X):0.##},{Y(p.Y):0.##}")));
            sb.Append("<polyline class=\"smoothed\" fill=\"none\" stroke=\"#2a62c9\" stroke-width=\"2\" points=\"").Append(line).Append("\"/></svg>");
            return sb.ToString();
        }
        sb.Append("<polyline fill=\"none\" stroke=\"#2a62c9\" stroke-width=\"1.5\" points=\"").Append(poly).Append("\"/>");
        if (pts.Count <= 60)
            foreach (var p in pts) sb.Append(Inv($"<circle cx=\"{X(p.X):0.##}\" cy=\"{Y(p.Y):0.##}\" r=\"2.5\" fill=\"#2a62c9\"/>"));
        sb.Append("</svg>");
        return sb.ToString();
    }

    private static string E(string s) => WebUtility.HtmlEncode(s);
    private static string P(double v) => double.IsNaN(v) ? "n/a" : (100 * v).ToString("0.00", CultureInfo.InvariantCulture) + "%";
    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
