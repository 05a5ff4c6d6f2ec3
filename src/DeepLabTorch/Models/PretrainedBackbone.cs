using DeepLabTorch.Checkpoints;
using DeepLabTorch.Extensions;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Models;

/// <summary>What an ImageNet backbone file gave the model: the tensors loaded, and the backbone's tensors left at initialisation.</summary>
public sealed record PretrainedReport(string File, int Loaded, int LeftAtInit, int Ignored, string Sha256);

/// <summary>
/// ImageNet-initialised backbones, as the reference starts every run: the reference's files, found where PyTorch
/// users already have them (torch hub's checkpoint cache), read by our safe importer and mapped onto the backbone
/// as the reference maps them. ResNet-101/50 (torchvision) and MobileNetV2 (the reference's model-zoo file) are
/// matched by name (torchvision's MobileNetV2, whose names differ, by structure): a file tensor goes to "backbone." + its name when that tensor exists with the same shape.
/// Cadene's Xception goes through the reference's rules first: 2-D pointwise weights gain their 1×1, block11 is
/// copied into blocks 12-19, block12 becomes block20, bn3 also fills bn4, conv4 becomes conv5 and bn4 bn5.
/// A file that fills less than half of the backbone is an error: a wrong file must not train from noise unnoticed.
/// </summary>
public static class PretrainedBackbone
{
    /// <summary>A backbone's reference file: its name in the cache, where the reference downloads it, and whether the
    /// hex part of its name is the start of its SHA-256 (torchvision's convention, which torch hub checks).</summary>
    internal sealed record Source(string Backbone, string FileName, string Url, bool NameCarriesHash);

    internal static IReadOnlyList<Source> Sources { get; } = new[]
    {
        new Source("mobilenet", "mobilenet_v2-6a65762b.pth", "http://jeff95.me/models/mobilenet_v2-6a65762b.pth", false),
        new Source("resnet", "resnet101-5d3b4d8f.pth", "https://download.pytorch.org/models/resnet101-5d3b4d8f.pth", true),
        new Source("resnet50", "resnet50-19c8e357.pth", "https://download.pytorch.org/models/resnet50-19c8e357.pth", true),
        new Source("xception", "xception-b5690688.pth", "http://data.lip6.fr/cadene/pretrainedmodels/xception-b5690688.pth", false),
        // BiSeNet's context path is torchvision's ResNet-18, which the face-parsing reference starts from ImageNet.
        new Source("bisenet", "resnet18-5c106cde.pth", "https://download.pytorch.org/models/resnet18-5c106cde.pth", true),
    };

    /// <summary>Where a network's ImageNet backbone sits in its state_dict; null for a network without one here.</summary>
    public static string? BackbonePrefix(SegmentationModel model) => model switch
    {
        DeepLabV3Plus => "backbone.",
        FaceParsing.BiSeNet => "cp.resnet.",
        _ => null,
    };

    /// <summary>A base URL that replaces the public hosts (an internal mirror holding the same file names).</summary>
    public const string MirrorVariable = "DEEPLAB_WEIGHTS_MIRROR";

    /// <summary>Seconds a download may go without receiving a byte before it is abandoned (default 60).</summary>
    public const string StallVariable = "DEEPLAB_DOWNLOAD_STALL_SECONDS";

    /// <summary>torch hub's checkpoint folders, in its order: $TORCH_HOME/hub/checkpoints, $XDG_CACHE_HOME/torch/hub/checkpoints, ~/.cache/torch/hub/checkpoints.</summary>
    public static IReadOnlyList<string> CacheFolders()
    {
        var folders = new List<string>();
        if (Environment.GetEnvironmentVariable("TORCH_HOME") is { Length: > 0 } torchHome) folders.Add(Path.Combine(torchHome, "hub", "checkpoints"));
        if (Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg) folders.Add(Path.Combine(xdg, "torch", "hub", "checkpoints"));
        folders.Add(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "torch", "hub", "checkpoints"));
        return folders;
    }

    /// <summary>
    /// The file for --pretrained-backbone: null for none, the path for a path, the cached reference file for auto.
    /// auto without the file downloads it into the first cache folder (from DEEPLAB_WEIGHTS_MIRROR when set); when that
    /// fails too, one error names the file, where it looked, the reason, and --pretrained-backbone none.
    /// </summary>
    public static string? Resolve(string? spec, string backbone, ILogger? log = null, IProgress<Runtime.ProgressReport>? progress = null)
    {
        if (spec is null || spec.Equals("none", StringComparison.OrdinalIgnoreCase)) return null;
        if (!spec.Equals("auto", StringComparison.OrdinalIgnoreCase))
            return File.Exists(spec) ? spec : throw new UserException($"--pretrained-backbone {spec}: no such file");
        var source = Sources.FirstOrDefault(s => s.Backbone == backbone)
            ?? throw new UserException($"--pretrained-backbone auto: no ImageNet file is known for {backbone}; give a file or --pretrained-backbone none");
        var folders = CacheFolders();
        foreach (var folder in folders)
        {
            var candidate = Path.Combine(folder, source.FileName);
            if (File.Exists(candidate)) return candidate;
        }
        var url = Environment.GetEnvironmentVariable(MirrorVariable) is { Length: > 0 } mirror ? mirror.TrimEnd('/') + "/" + source.FileName : source.Url;
        try
        {
            return Download(url, Path.Combine(folders[0], source.FileName), source.NameCarriesHash ? HashPrefix(source.FileName) : null, log, progress);
        }
        catch (UserException e)
        {
            throw new UserException($"--pretrained-backbone auto: {source.FileName} is not in {string.Join(" or ", folders)} and could not be downloaded " +
                $"({e.Message}); put it in {folders[0]}, give its path, or train from random weights with --pretrained-backbone none");
        }
    }

    /// <summary>The hex after the last '-' of a file name ("resnet50-19c8e357.pth" → "19c8e357").</summary>
    internal static string? HashPrefix(string fileName)
    {
        var m = System.Text.RegularExpressions.Regex.Match(fileName, "-([0-9a-f]{6,})\\.");
        return m.Success ? m.Groups[1].Value : null;
    }

    /// <summary>
    /// Downloads url to target as torch hub does: into a temporary file beside it, with the SHA-256 checked against
    /// the expected prefix when there is one, then renamed into place. A truncated transfer, a stalled server, an HTTP
    /// error or a wrong hash deletes the partial file and is a UserException naming the URL (and both hashes).
    /// </summary>
    internal static string Download(string url, string target, string? expectedHashPrefix, ILogger? log = null, IProgress<Runtime.ProgressReport>? progress = null)
    {
        var folder = Path.GetDirectoryName(Path.GetFullPath(target))!;
        Directory.CreateDirectory(folder);
        var partial = target + "." + Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture) + ".partial";
        var stall = TimeSpan.FromSeconds(int.TryParse(Environment.GetEnvironmentVariable(StallVariable), out var sec) && sec > 0 ? sec : 60);
        log?.LogInformation("downloading {Url} to {File}", url, target);
        try
        {
            using var http = new HttpClient { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
            using var headers = new CancellationTokenSource(stall);
            HttpResponseMessage response;
            try
            {
                response = http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, headers.Token).GetAwaiter().GetResult();
            }
            catch (OperationCanceledException)
            {
                throw new UserException($"{url}: no answer in {stall.TotalSeconds:0} s");
            }
            catch (HttpRequestException e)
            {
                throw new UserException($"{url}: {e.Message}");
            }
            using (response)
            {
                if (!response.IsSuccessStatusCode) throw new UserException($"{url}: HTTP {(int)response.StatusCode} {response.ReasonPhrase}");
                long? length = response.Content.Headers.ContentLength;
                using var body = response.Content.ReadAsStream();
                using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
                long received = 0;
                var clock = System.Diagnostics.Stopwatch.StartNew();
                var lastReport = TimeSpan.Zero;
                var label = "download " + Path.GetFileName(target);
                using (var file = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None))
                {
                    var buffer = new byte[1 << 16];
                    while (true)
                    {
                        int n;
                        using (var cts = new CancellationTokenSource(stall))
                        {
                            try
                            {
                                n = body.ReadAsync(buffer, cts.Token).AsTask().GetAwaiter().GetResult();
                            }
                            catch (OperationCanceledException)
                            {
                                throw new UserException($"{url}: the transfer stalled for {stall.TotalSeconds:0} s after {received} bytes");
                            }
                            catch (Exception e) when (e is IOException or HttpRequestException)
                            {
                                throw new UserException($"{url}: the transfer broke off after {received} bytes ({e.Message})");
                            }
                        }
                        if (n == 0) break;
                        file.Write(buffer, 0, n);
                        sha.AppendData(buffer, 0, n);
                        received += n;
                        if (progress is not null && clock.Elapsed - lastReport > TimeSpan.FromMilliseconds(200))
                        {
                            lastReport = clock.Elapsed;
                            progress.Report(new Runtime.ProgressReport(label, received >> 20, length >> 20, "MB", clock.Elapsed));
                        }
                    }
                    file.Flush(true);
                }
                progress?.Report(new Runtime.ProgressReport(label, received >> 20, length >> 20, "MB", clock.Elapsed) { Final = true });
                if (length is { } expectedLength && received != expectedLength)
                    throw new UserException($"{url}: the transfer ended after {received} of {expectedLength} bytes");
                var hash = Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
                if (expectedHashPrefix is not null && !hash.StartsWith(expectedHashPrefix, StringComparison.Ordinal))
                    throw new UserException($"{url}: SHA-256 {hash} does not start with {expectedHashPrefix}, the hash its name promises");
                File.Move(partial, target, overwrite: true);
                log?.LogInformation("downloaded {File}: {Bytes} bytes, SHA-256 {Hash}", target, received, hash);
                return target;
            }
        }
        finally
        {
            if (File.Exists(partial)) File.Delete(partial);
        }
    }

    /// <summary>Loads the backbone of a DeepLabV3+ (or BiSeNet's ResNet-18) from the file; throws a CheckpointException when it does not fit.</summary>
    public static PretrainedReport Load(SegmentationModel model, string path, ILogger? log = null)
    {
        var prefix = BackbonePrefix(model) ?? throw new UserException($"--pretrained-backbone: {model.Config.Backbone} has no ImageNet backbone file here; train it with --pretrained-backbone none");
        var sd = WeightFiles.LoadStateDict(path, out _);
        try
        {
            using var scope = NewDisposeScope();   // the reshaped views Map makes
            var own = model.StateDictInOrder();
            var mapped = Map(model.Config.Backbone, sd,
                own.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).Select(k => k[prefix.Length..]).ToList());
            var backboneKeys = own.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal) && !k.EndsWith("num_batches_tracked", StringComparison.Ordinal)).ToList();
            int loaded = 0, ignored = 0;
            var mismatched = new List<string>();
            using (no_grad())
            {
                foreach (var (key, tensor) in mapped)
                {
                    if (!own.TryGetValue(prefix + key, out var target))
                    {
                        if (!key.EndsWith("num_batches_tracked", StringComparison.Ordinal)) ignored++;
                        continue;
                    }
                    if (!target.shape.SequenceEqual(tensor.shape))
                    {
                        mismatched.Add($"{key} {Shape(tensor)} in the file, {Shape(target)} in the model");
                        continue;
                    }
                    using var converted = tensor.to(target.dtype, target.device);
                    target.copy_(converted);
                    // BatchNorm's step counters come along but are not weights: the counts are of weights and statistics.
                    if (!key.EndsWith("num_batches_tracked", StringComparison.Ordinal)) loaded++;
                }
            }
            if (mismatched.Count > 0)
                throw new CheckpointException(path, $"{mismatched.Count} tensor(s) have another shape than the {model.Config.Backbone} backbone's: " +
                    string.Join("; ", mismatched.Take(5)) + (mismatched.Count > 5 ? "; …" : ""));
            if (loaded * 2 < backboneKeys.Count)
                throw new CheckpointException(path, $"only {loaded} of the {model.Config.Backbone} backbone's {backboneKeys.Count} tensors are in it " +
                    $"({ignored} of its tensors fit nowhere): not an ImageNet file for this backbone");
            string hash;
            using (var stream = File.OpenRead(path)) hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(stream)).ToLowerInvariant();
            var report = new PretrainedReport(path, loaded, backboneKeys.Count - loaded, ignored, hash);
            log?.LogInformation("pretrained backbone: {File} (SHA-256 {Hash}): {Loaded} tensors loaded, {LeftAtInit} of the backbone's left at initialisation, {Ignored} of the file's unused",
                path, hash, report.Loaded, report.LeftAtInit, report.Ignored);
            return report;
        }
        finally
        {
            foreach (var t in sd.Values) t.Dispose();
        }
    }

    /// <summary>The file's tensors under the backbone's names (without "backbone."), as the reference maps them.</summary>
    internal static Dictionary<string, Tensor> Map(string backbone, IReadOnlyDictionary<string, Tensor> file, IReadOnlyList<string> backboneKeys)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        if (backbone == "mobilenet" && file.Keys.Any(k => TorchvisionMobileNet.IsMatch(k)))
            return ByStructure(file, backboneKeys);
        if (backbone != "xception")
        {
            foreach (var (k, v) in file) result[k] = v;
            return result;
        }
        foreach (var (k, raw) in file)
        {
            // Cadene's pointwise convolutions are stored as Linear-like 2-D weights in some versions.
            var v = k.Contains("pointwise", StringComparison.Ordinal) && raw.dim() == 2 ? raw.unsqueeze(-1).unsqueeze(-1) : raw;
            if (k.StartsWith("block11", StringComparison.Ordinal))
            {
                result[k] = v;
                for (int i = 12; i <= 19; i++) result["block" + i.ToString(System.Globalization.CultureInfo.InvariantCulture) + k["block11".Length..]] = v;
            }
            else if (k.StartsWith("block12", StringComparison.Ordinal)) result["block20" + k["block12".Length..]] = v;
            else if (k.StartsWith("bn3", StringComparison.Ordinal))
            {
                result[k] = v;
                result["bn4" + k["bn3".Length..]] = v;
            }
            else if (k.StartsWith("conv4", StringComparison.Ordinal)) result["conv5" + k["conv4".Length..]] = v;
            else if (k.StartsWith("bn4", StringComparison.Ordinal)) result["bn5" + k["bn4".Length..]] = v;
            else result[k] = v;
        }
        return result;
    }

    /// <summary>torchvision's MobileNetV2 nests each conv + BatchNorm in a module of its own: features.N.conv.M.K.</summary>
    private static readonly System.Text.RegularExpressions.Regex TorchvisionMobileNet = new(@"^features\.\d+\.conv\.\d+\.\d+\.weight$");

    /// <summary>
    /// A layout whose names differ (torchvision's MobileNetV2) mapped by structure: within each features.N block the
    /// layers (a layer: the tensors under one module path) pair up in order with the backbone's, names of the tensors
    /// kept (weight, bias, running_mean, …); a block whose layer counts differ is left out, and the shape check and the
    /// counts say so.
    /// </summary>
    private static Dictionary<string, Tensor> ByStructure(IReadOnlyDictionary<string, Tensor> file, IReadOnlyList<string> backboneKeys)
    {
        static string Layer(string key) => key[..key.LastIndexOf('.')];
        static string? Block(string key) => key.StartsWith("features.", StringComparison.Ordinal) ? string.Join('.', key.Split('.').Take(2)) : null;
        static Dictionary<string, List<string>> Layers(IEnumerable<string> keys)
        {
            var blocks = new Dictionary<string, List<string>>(StringComparer.Ordinal);
            foreach (var k in keys)
            {
                if (Block(k) is not { } b) continue;
                var list = blocks.TryGetValue(b, out var l) ? l : blocks[b] = new List<string>();
                if (!list.Contains(Layer(k))) list.Add(Layer(k));
            }
            return blocks;
        }
        var theirs = Layers(file.Keys);
        var ours = Layers(backboneKeys);
        var rename = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (block, layers) in theirs)
            if (ours.TryGetValue(block, out var mine) && mine.Count == layers.Count)
                for (int i = 0; i < layers.Count; i++) rename[layers[i]] = mine[i];
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (k, v) in file)
            result[rename.TryGetValue(Layer(k), out var to) ? to + k[k.LastIndexOf('.')..] : k] = v;
        return result;
    }

    private static string Shape(Tensor t) => "[" + string.Join(", ", t.shape) + "]";
}
