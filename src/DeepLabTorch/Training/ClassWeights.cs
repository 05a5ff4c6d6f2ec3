using System.Text.Json;
using DeepLabTorch.Data;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeepLabTorch.Training;

/// <summary>
/// The reference's balanced class weights: with z the pixel count of each class over the training
/// masks, weight_c = 1 / ln(1.02 + z_c / sum(z)). Rare classes get up to ~50x, frequent ones ~1.4x.
/// The reference counts its augmented training crops; we count the stored masks (deterministic and
/// the same data) and cache the result as JSON, keyed by data set name, size and class count.
/// </summary>
internal static class ClassWeights
{
    public static double[] FromCounts(IReadOnlyList<long> counts)
    {
        double total = counts.Sum();
        if (total <= 0) throw new UserException("cannot compute balanced class weights: the training masks contain no labelled pixels");
        return counts.Select(z => 1.0 / Math.Log(1.02 + z / total)).ToArray();
    }

    /// <summary>Pixels per class over every mask of the set; ignore and out-of-range values are skipped.</summary>
    public static long[] CountLabels(ISegmentationDataset dataset, int numClasses, CancellationToken ct = default)
    {
        var counts = new long[numClasses];
        for (var i = 0; i < dataset.Count; i++)
        {
            ct.ThrowIfCancellationRequested();
            var s = dataset.Load(i);
            foreach (var v in s.Mask)
                if (v < numClasses) counts[v]++;
        }
        return counts;
    }

    private sealed record Cache(string Dataset, int Samples, int NumClasses, long[] Counts, double[] Weights);

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };

    /// <summary>
    /// Loads the weights from cachePath when it was made for the same data set, size and class count;
    /// otherwise counts the masks and writes the cache. A cache that cannot be written is only reported.
    /// </summary>
    /// <param name="log">Where the steps are reported (cache loaded, counting, cached); a cache it cannot use or write is a warning.</param>
    public static double[] LoadOrCompute(ISegmentationDataset dataset, int numClasses, string cachePath, ILogger? log = null, CancellationToken ct = default)
    {
        log ??= NullLogger.Instance;
        if (File.Exists(cachePath))
        {
            try
            {
                var c = JsonSerializer.Deserialize<Cache>(File.ReadAllText(cachePath), Json);
                if (c is not null && c.Dataset == dataset.Name && c.Samples == dataset.Count && c.NumClasses == numClasses && c.Weights?.Length == numClasses)
                {
                    log.LogInformation("class weights: loaded {CachePath}", cachePath);
                    return c.Weights;
                }
                log.LogInformation("class weights: {CachePath} was made for another data set; recomputing", cachePath);
            }
            catch (JsonException e)
            {
                log.LogWarning("class weights: ignoring unreadable cache {CachePath} ({Problem})", cachePath, e.Message);
            }
        }
        log.LogInformation("class weights: counting labels over {Masks} training masks", dataset.Count);
        var counts = CountLabels(dataset, numClasses, ct);
        var weights = FromCounts(counts);
        try
        {
            var dir = Path.GetDirectoryName(Path.GetFullPath(cachePath));
            if (dir is not null) Directory.CreateDirectory(dir);
            var tmp = cachePath + ".tmp";
            File.WriteAllText(tmp, JsonSerializer.Serialize(new Cache(dataset.Name, dataset.Count, numClasses, counts, weights), Json));
            File.Move(tmp, cachePath, overwrite: true);
            log.LogInformation("class weights: cached in {CachePath}", cachePath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log.LogWarning("class weights: could not write the cache {CachePath} ({Problem})", cachePath, e.Message);
        }
        return weights;
    }
}
