using DeepLabTorch.Data;
using DeepLabTorch.Extensions;
using DeepLabTorch.Inference;
using DeepLabTorch.Tests.Inference;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Export;

/// <summary>
/// The README's "Deploying a model" snippet, compiled and run here: the text between the markers must be
/// the README's code block (after its using line), so neither can change without the other.
/// </summary>
public class DeploySnippetTests
{
    // README:deploy begin
    static byte[] Segment(string onnxPath, byte[] rgb, int height, int width)
    {
        float[] mean = { 0.485f, 0.456f, 0.406f }, std = { 0.229f, 0.224f, 0.225f };
        int plane = height * width;
        var chw = new float[3 * plane];                        // rgb: row-major RGB bytes, from any decoder
        for (int i = 0; i < plane; i++)
            for (int c = 0; c < 3; c++)
                chw[c * plane + i] = (rgb[3 * i + c] / 255f - mean[c]) / std[c];
        using var session = new InferenceSession(onnxPath);
        using var input = OrtValue.CreateTensorValueFromMemory(chw, new long[] { 1, 3, height, width });
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, new[] { "input" }, new[] { input }, new[] { "logits" });
        var logits = outputs[0].GetTensorDataAsSpan<float>();  // [1, classes, height, width]
        var mask = new byte[plane];                            // argmax over the classes
        for (int c = 1; c < logits.Length / plane; c++)
            for (int i = 0; i < plane; i++)
                if (logits[c * plane + i] > logits[mask[i] * plane + i]) mask[i] = (byte)c;
        return mask;
    }
    // README:deploy end

    private static string ThisFile => Path.Combine(Python.RepoRoot, "tests", "DeepLabTorch.Tests", "Export", "DeploySnippetTests.cs");

    [Fact]
    public void TheReadmeShowsTheSnippetThatRunsHere()
    {
        var lines = File.ReadAllLines(ThisFile);
        int begin = Array.FindIndex(lines, l => l.Trim() == "// README:deploy begin");
        int end = Array.FindIndex(lines, l => l.Trim() == "// README:deploy end");
        Assert.True(begin >= 0 && end > begin, "snippet markers not found");
        var snippet = lines[(begin + 1)..end].Select(l => l.Length >= 4 ? l[4..] : l.TrimStart()).ToList();
        var expected = string.Join("\n", new[] { "using Microsoft.ML.OnnxRuntime;", "" }.Concat(snippet));

        var readme = File.ReadAllText(Path.Combine(Python.RepoRoot, "README.md")).Replace("\r\n", "\n");
        int section = readme.IndexOf("\n## Deploying a model\n", StringComparison.Ordinal);
        Assert.True(section >= 0, "README has no 'Deploying a model' section");
        int open = readme.IndexOf("```csharp\n", section, StringComparison.Ordinal);
        int close = readme.IndexOf("\n```", open + 1, StringComparison.Ordinal);
        Assert.True(open > section && close > open, "no csharp block in 'Deploying a model'");
        Assert.Equal(expected, readme[(open + "```csharp\n".Length)..close]);
    }

    [Fact]
    public void TheSnippetSegmentsAnExportedModelLikeTheModelItself()
    {
        using var dir = new TempDir();
        var checkpoint = OnnxPredictTests.SaveTrainedLooking(dir.Path, 13);
        using var loaded = DeepLabTorch.Models.ModelLoader.LoadForInference(checkpoint, null, CPU);
        var onnx = dir["model.onnx"];
        DeepLabTorch.Export.DeepLabOnnxExporter.Export((DeepLabTorch.Models.DeepLabV3Plus)loaded.Model, onnx);
        const int h = 48, w = 64;
        var rgb = InferenceTestUtil.TestImage(h, w, 1);

        var mask = Segment(onnx, rgb, h, w);

        float[] logits;
        using (var scope = NewDisposeScope())
        using (no_grad())
            logits = loaded.Model.forward(ImageTensor.FromRgb(rgb, h, w)).ToArray<float>();
        int plane = h * w, decided = 0, ones = 0;
        double scale = Math.Max(1, logits.Max(v => Math.Abs(v)));
        for (int i = 0; i < plane; i++)
        {
            ones += mask[i];
            // Where the two classes are within the export tolerance of each other, either answer is right.
            if (Math.Abs(logits[i] - logits[plane + i]) <= 2e-4 * scale) continue;
            decided++;
            Assert.Equal(logits[plane + i] > logits[i] ? 1 : 0, mask[i]);
        }
        Assert.True(decided >= 0.99 * plane, $"only {decided} of {plane} pixels have a clear winner");
        Assert.InRange(ones, 1, plane - 1);
    }
}
