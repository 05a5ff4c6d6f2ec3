using CommandLine;
using DeepLabTorch.Data;
using DeepLabTorch.Inference;
using DeepLabTorch.Models;
using DeepLabTorch.Runtime;
using Microsoft.Extensions.Logging;

namespace DeepLabTorch.Cli.Verbs;

[Verb("recolor", HelpText = "Recolour parts of parsed faces (hair, lips, ...) with a face-parsing model, as the reference's makeup demo: the parts " +
    "take the colour's hue (and with --saturation its saturation; on by default for lips), the shading stays. Writes <stem>_recolor.png per image.")]
public sealed class RecolorVerb : ModelRunOptions
{
    [Option("weights", Required = true, HelpText = "A face-parsing checkpoint (bisenet, stdc1, stdc2) or any model whose classes include the parts.")]
    public string Weights { get; set; } = "";
    [Option("input", Required = true, Min = 1, HelpText = "Images, folders of images or globs.")]
    public IEnumerable<string> Input { get; set; } = Array.Empty<string>();
    [Option("output", Required = true, HelpText = "Output folder (created).")]
    public string Output { get; set; } = "";
    [Option("part", Default = "hair", HelpText = "The classes to recolour, by name or index, comma separated (e.g. hair, or u_lip,l_lip).")]
    public string Part { get; set; } = "hair";
    [Option("color", Required = true, HelpText = "The colour: #RRGGBB, #RGB or a name such as red.")]
    public string Color { get; set; } = "";
    [Option("saturation", HelpText = "Also take the colour's saturation (default: on when every part is a lip, as the reference).")]
    public bool? Saturation { get; set; }

    public override int Run()
    {
        if (Inference.Background.Parse(Color) is not Inference.Background.Colour colour)
            throw new UserException($"--color '{Color}' is not a colour (#RRGGBB, #RGB or a name)");
        var files = InputFiles.Expand(Input);
        var log = Loggers.CreateLogger(LogCategories.Inference);
        var device = Engine.SetUp(Device, Threads, log: Loggers.CreateLogger(LogCategories.Runtime));
        using var loaded = ModelLoader.LoadForInference(Weights, new ModelRequest { Backbone = Backbone, OutputStride = OutStride, NumClasses = NumClasses }, device,
            Loggers.CreateLogger(LogCategories.Checkpoints), PrecisionNames.Parse(Precision));
        var parts = Part.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(p => ModelLoader.ResolveClass(p, loaded.ClassNames, "--part")).ToArray();
        if (parts.Length == 0) throw new UserException("--part names no class");
        bool takeSaturation = Saturation ?? parts.All(p => loaded.ClassNames[p] is "u_lip" or "l_lip");
        log.LogInformation("recolor: {Images} image(s), {Parts} to #{R:X2}{G:X2}{B:X2}{Saturation}", files.Count,
            string.Join(",", parts.Select(p => loaded.ClassNames[p])), colour.R, colour.G, colour.B, takeSaturation ? " (hue and saturation)" : " (hue)");
        Directory.CreateDirectory(Output);
        var predictor = new Predictor(loaded.Model, new PredictOptions(), device);
        int failed = 0;
        foreach (var file in files)
        {
            try
            {
                var (rgb, h, w) = ImageCodec.DecodeImage(file);
                byte[] classes;
                using (var image = RgbTensors.FromBytes(rgb, h, w))
                using (var logits = predictor.LogitsOne(RgbTensors.Normalize(image)))
                    classes = SegmentationOutputs.ClassIndices(logits);
                var result = Recolor.Apply(rgb, classes, parts, (colour.R, colour.G, colour.B), takeSaturation);
                var target = Path.Combine(Output, Path.GetFileNameWithoutExtension(file) + "_recolor.png");
                ImageCodec.WritePng(target, result, h, w);
                Results.WriteLine($"wrote {target}");
            }
            catch (DataException e)
            {
                failed++;
                log.LogWarning("skipped {File}: {Reason}", e.Path, e.Reason);
            }
        }
        return failed > 0 ? 1 : 0;
    }
}
