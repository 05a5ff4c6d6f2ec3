namespace DeepLabTorch.Data;

/// <summary>
/// Before training: the training masks' labels must fit the class count (255 aside), or the first step fails deep in
/// the loss ("target out of bounds", the reference's most common error on custom data). Large sets are sampled.
/// </summary>
internal static class LabelCheck
{
    /// <summary>The most masks read before training; `data check` reads them all.</summary>
    public const int SampleSize = 64;

    /// <summary>Reads up to SampleSize evenly spaced masks; throws one UserException naming the files and values and the class count that would fit.</summary>
    public static void Run(ISegmentationDataset set, int numClasses)
    {
        int n = set.Count, take = Math.Min(n, SampleSize);
        var bad = new List<(string File, int Value)>();
        for (int k = 0; k < take; k++)
        {
            int index = take == n ? k : (int)((long)k * n / take);
            try
            {
                var s = set.Load(index);
                int largest = -1;
                foreach (var v in s.Mask) if (v != 255 && v > largest) largest = v;
                if (largest >= numClasses) bad.Add((s.Id, largest));
            }
            catch (DataException e) when (e.LabelOutOfRange is { } value)
            {
                bad.Add((e.Path, value));
            }
            catch (DataException)
            {
                // An unreadable sample is the loader's business (--skip-bad or a stop naming it), not a label problem.
            }
        }
        if (bad.Count == 0) return;
        var fits = Math.Max(numClasses, bad.Max(b => b.Value) + 1);
        var sampled = take < n ? $" of {take} sampled of {n}" : $" of {n}";
        throw new UserException($"labels outside 0-{numClasses - 1} in {bad.Count}{sampled} training masks of {set.Name}: " +
            string.Join("; ", bad.Take(5).Select(b => $"{b.File} (value {b.Value})")) + (bad.Count > 5 ? "; …" : "") +
            $". --num-classes {fits} (with as many class names) would fit them, or fix the masks; deeplab data check reads every file");
    }
}
