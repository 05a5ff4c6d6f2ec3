using System.Diagnostics;
using System.Globalization;
using System.Text;
using CommandLine;
using DeepLabTorch.Data;

namespace DeepLabTorch.Cli.Verbs;

[Verb("data", HelpText = "Data tools: 'synth' writes a synthetic VOC-format (or portrait) set; 'check' scans a data set and reports every bad file; 'bench' measures the loader.")]
public sealed class DataVerb : VerbBase
{
    [Value(0, MetaName = "action", Required = true, HelpText = "synth | check | bench")]
    public string Action { get; set; } = "";

    // synth
    [Option("out", HelpText = "synth: output folder.")]
    public string? Out { get; set; }
    [Option("count", Default = 200, HelpText = "synth: number of images.")]
    public int Count { get; set; }
    [Option("seed", Default = 1, HelpText = "synth: random seed; loader seed for bench.")]
    public int Seed { get; set; }
    [Option("kind", Default = "voc", HelpText = "synth: voc (VOC 2012 tree), portrait (images/ + masks/, 0/255) or celebamask-hq (CelebAMask-HQ's layout: face images and one mask per part; square, the smaller of --width and --height).")]
    public string Kind { get; set; } = "voc";
    [Option("width", Default = 500, HelpText = "synth: image width.")]
    public int Width { get; set; }
    [Option("height", Default = 375, HelpText = "synth: image height.")]
    public int Height { get; set; }

    // check / bench
    [Option("json", HelpText = "check: print the report as JSON (images, class_pixels per class index, ignored_pixels, problems, sizes).")]
    public bool Json { get; set; }

    [Option("dataset", Default = "pascal", HelpText = "pascal | sbd | folder | synthetic | celebamask-hq | cityscapes | coco.")]
    public string Dataset { get; set; } = "pascal";
    [Option("data-root", HelpText = "The data set's root folder.")]
    public string? DataRoot { get; set; }
    [Option("sbd-root", HelpText = "SBD's benchmark_RELEASE/dataset folder (default: searched near --data-root).")]
    public string? SbdRoot { get; set; }
    [Option("use-sbd", HelpText = "pascal: also check trainaug (VOC train + SBD).")]
    public bool UseSbd { get; set; }
    [Option("split", HelpText = "Comma-separated splits to check (default train,val; plus trainaug with --use-sbd).")]
    public string? Split { get; set; }
    [Option("class-names", HelpText = "Comma-separated class names (folder sets default to background,person).")]
    public string? ClassNames { get; set; }
    [Option("ignore-value", Default = 255, HelpText = "Mask value meaning 'ignore'.")]
    public int IgnoreValue { get; set; }
    [Option("workers", Default = "2", HelpText = "check: threads; bench: comma-separated worker counts.")]
    public string Workers { get; set; } = "2";

    // bench
    [Option("crop-size", Default = 513, HelpText = "bench: crop size.")]
    public int CropSize { get; set; }
    [Option("base-size", Default = 513, HelpText = "bench: base size.")]
    public int BaseSize { get; set; }
    [Option("batch-size", Default = 4, HelpText = "bench: batch size.")]
    public int BatchSize { get; set; }
    [Option("blur", HelpText = "bench: include the random Gaussian blur of the reference recipe.")]
    public bool Blur { get; set; }
    [Option("batches", Default = 10, HelpText = "bench: timed batches per worker count.")]
    public int Batches { get; set; }
    [Option("stages", HelpText = "bench: time decode and augment per image on one thread instead of the whole loader.")]
    public bool Stages { get; set; }
    [Option("images", Default = 60, HelpText = "bench --stages: number of training images timed.")]
    public int Images { get; set; }

    public override int Run() => Action switch
    {
        "synth" => Synth(),
        "check" => Check(),
        "bench" => Bench(),
        _ => throw new UserException($"unknown data action '{Action}' (expected synth, check or bench)"),
    };

    private int Synth()
    {
        if (string.IsNullOrWhiteSpace(Out)) throw new UserException("data synth needs --out DIR");
        var sw = Stopwatch.StartNew();
        if (Kind == CelebAMaskHq.Name)
        {
            // Square faces: masks of the smaller side, images twice that, as CelebAMask-HQ's 512² masks and 1024² images.
            var side = Math.Min(Width, Height);
            SyntheticFaces.Generate(Out, Count, Seed, side);
            Results.WriteLine($"wrote {Count} synthetic {Kind} faces ({2 * side}² images, {side}² part masks) to {Out} in {sw.Elapsed.TotalSeconds:F1} s");
            return 0;
        }
        Synthetic.Generate(Out, Count, Seed, Kind, Width, Height);
        Results.WriteLine($"wrote {Count} synthetic {Kind} images ({Width}x{Height}) to {Out} in {sw.Elapsed.TotalSeconds:F1} s");
        return 0;
    }

    /// <summary>Where opening a data set reports (category DeepLabTorch.Data).</summary>
    private Microsoft.Extensions.Logging.ILogger Log => Loggers.CreateLogger(DeepLabTorch.Runtime.LogCategories.Data);

    private DataOptions Options(int workers) => new()
    {
        Dataset = Dataset,
        DataRoot = DataRoot,
        SbdRoot = SbdRoot,
        UseSbd = UseSbd,
        IgnoreValue = IgnoreValue,
        ClassNames = ClassNames?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
        Workers = workers,
        Seed = Seed,
        CropSize = CropSize,
        BaseSize = BaseSize,
        GaussianBlur = Blur,
    };

    private static int[] ParseList(string text, string what)
    {
        try { return text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray(); }
        catch (FormatException) { throw new UserException($"{what}: expected comma-separated integers, got '{text}'"); }
    }

    private int Check()
    {
        int threads = ParseList(Workers, "--workers")[0];
        var splits = Split?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var report = DataChecker.Run(Options(threads), splits, threads, Log);
        if (Json) Results.WriteLine(report.ToJson());
        else Results.Write(report.Format());
        return report.Clean ? 0 : 1;
    }

    private int Bench()
    {
        if (Stages) return BenchStages();
        var counts = ParseList(Workers, "--workers");
        var json = new StringBuilder("{");
        for (int k = 0; k < counts.Length; k++)
        {
            double ips = LoaderBenchmark.ImagesPerSecond(Options(counts[k]), BatchSize, Batches, log: Log);
            json.Append(CultureInfo.InvariantCulture, $"{(k > 0 ? ", " : "")}\"{counts[k]}\": {ips:F2}");
        }
        Results.WriteLine(json.Append('}'));
        return 0;
    }

    private int BenchStages()
    {
        var r = LoaderBenchmark.Stages(Options(0), Images, Log);
        string F(double v) => double.IsNaN(v) ? "null" : v.ToString("F1", CultureInfo.InvariantCulture);
        // Load + augment on N threads without tensors: the loader's ceiling at N workers.
        var workers = string.Join(", ", ParseList(Workers, "--workers").Select(n => $"\"{n}\": {F(LoaderBenchmark.WorkerRate(Options(n), Images, n, Log))}"));
        Results.WriteLine($"{{\"unit\": \"images per second\", \"images\": {r.Images}, \"crop\": {CropSize}, \"blur\": {(Blur ? "true" : "false")}, " +
            $"\"one_thread\": {{\"decode_image\": {F(r.DecodeImage)}, \"decode_mask\": {F(r.DecodeMask)}, \"load\": {F(r.Load)}, \"augment\": {F(r.Augment)}}}, " +
            $"\"load_and_augment_by_threads\": {{{workers}}}}}");
        return 0;
    }
}
