using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace DeepLabTorch.Data;

/// <summary>
/// Training-augmented images per second through the full loader (decode, augment, collate, tensors). Each
/// method's log gets what opening the data set reports (Datasets.Open: the synthetic set's generation).
/// </summary>
internal static class LoaderBenchmark
{
    public static double ImagesPerSecond(DataOptions o, int batchSize, int batches, int warmupBatches = 1, ILogger? log = null)
    {
        var ds = Datasets.Open(o, "train", log);
        using var loader = new DataLoader(ds, o, train: true, batchSize, log: log);
        int done = 0, images = 0;
        var sw = new Stopwatch();
        for (int epoch = 0; done < batches + warmupBatches; epoch++)
            foreach (var b in loader.Epoch(epoch))
            {
                using (b)
                {
                    if (done == warmupBatches) sw.Start();
                    else if (done > warmupBatches) images += b.Size;
                    done++;
                }
                if (done >= batches + warmupBatches) break;
            }
        // The first timed batch only starts the clock: count batches after it.
        return images / sw.Elapsed.TotalSeconds;
    }

    /// <summary>Images per second of each loader stage on one thread (no tensors involved).</summary>
    /// <param name="DecodeImage">JPEG to RGB (file read included).</param>
    /// <param name="DecodeMask">PNG mask to indices (file read included).</param>
    /// <param name="Load">Both plus the dataset's checks (FileDataset.Load): what a worker does before augmenting.</param>
    /// <param name="Augment">Transforms.Train draw and Apply into a batch slot (crop, flip, scale, pad, blur, normalise).</param>
    public readonly record struct StageRates(int Images, double DecodeImage, double DecodeMask, double Load, double Augment);

    /// <summary>
    /// Times the stages a worker runs per sample, single-threaded, over the first <paramref name="images"/> training
    /// samples: per stage one untimed pass (file cache, JIT), then timed passes for at least half a second.
    /// Collation is not timed here: workers write into the batch arrays directly, and the batch is wrapped as
    /// tensors without a copy.
    /// </summary>
    public static StageRates Stages(DataOptions o, int images, ILogger? log = null)
    {
        var ds = Datasets.Open(o, "train", log);
        int n = Math.Min(images, ds.Count);
        if (n == 0) throw new UserException("the train split is empty");
        var entries = (ds as FileDataset)?.Entries;
        var samples = new SegmentationSample[n];
        for (int i = 0; i < n; i++) samples[i] = ds.Load(i);
        // Each stage: one untimed pass (JIT tiers, file cache), then whole passes for at least half a second.
        double Rate(Action<int> stage)
        {
            for (int i = 0; i < n; i++) stage(i);
            var sw = Stopwatch.StartNew();
            long done = 0;
            for (int pass = 0; sw.Elapsed.TotalSeconds < 0.5; pass++)
                for (int i = 0; i < n; i++, done++) stage(i);
            return done / sw.Elapsed.TotalSeconds;
        }
        double decodeImage = entries == null ? double.NaN : Rate(i => ImageCodec.DecodeImage(entries[i].ImagePath));
        double decodeMask = entries == null ? double.NaN : Rate(i => ImageCodec.DecodeMask(entries[i].MaskPath));
        double load = Rate(i => ds.Load(i));
        var image = new float[3 * o.CropSize * o.CropSize];
        var mask = new long[o.CropSize * o.CropSize];
        // Each pass draws other augmentations (the epoch is the pass number), as training would.
        int epoch = 0;
        double augment = Rate(i =>
        {
            if (i == 0) epoch++;
            Transforms.Apply(samples[i], Transforms.Train(samples[i].Height, samples[i].Width, o, epoch, i), image, mask, o.PadWithMean);
        });
        return new StageRates(n, decodeImage, decodeMask, load, augment);
    }

    /// <summary>
    /// Load and augment together (what the loader's workers do, without the tensors) on <paramref name="threads"/>
    /// threads, each writing into its own slot: images per second over at least one second, after a warm-up pass.
    /// </summary>
    public static double WorkerRate(DataOptions o, int images, int threads, ILogger? log = null)
    {
        var ds = Datasets.Open(o, "train", log);
        int n = Math.Min(images, ds.Count);
        if (n == 0) throw new UserException("the train split is empty");
        long next = 0;
        var stop = new ManualResetEventSlim();
        void Work(bool warmup)
        {
            var image = new float[3 * o.CropSize * o.CropSize];
            var mask = new long[o.CropSize * o.CropSize];
            for (long k; (k = Interlocked.Increment(ref next) - 1) < (warmup ? n : long.MaxValue) && !stop.IsSet;)
            {
                var s = ds.Load((int)(k % n));
                Transforms.Apply(s, Transforms.Train(s.Height, s.Width, o, k / n, (int)(k % n)), image, mask, o.PadWithMean);
            }
        }
        Parallel.Invoke(new ParallelOptions { MaxDegreeOfParallelism = threads }, Enumerable.Repeat(() => Work(true), threads).ToArray());
        next = 0;
        var sw = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, threads).Select(_ => new Thread(() => Work(false))).ToArray();
        foreach (var t in workers) t.Start();
        Thread.Sleep(1000);
        stop.Set();
        foreach (var t in workers) t.Join();
        return Interlocked.Read(ref next) / sw.Elapsed.TotalSeconds;
    }
}
