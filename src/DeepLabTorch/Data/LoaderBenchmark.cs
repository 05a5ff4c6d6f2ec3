using System.Diagnostics;

namespace DeepLabTorch.Data;

/// <summary>Training-augmented images per second through the full loader (decode, augment, collate, tensors).</summary>
public static class LoaderBenchmark
{
    public static double ImagesPerSecond(DataOptions o, int batchSize, int batches, int warmupBatches = 1)
    {
        var ds = Datasets.Open(o, "train");
        using var loader = new DataLoader(ds, o, train: true, batchSize);
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
}
