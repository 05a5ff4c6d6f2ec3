namespace DeepLabTorch.Data;

/// <summary>
/// A small counter-based generator (SplitMix64) keyed by (seed, epoch, index): every sample's
/// augmentation is a pure function of those three numbers, whatever thread runs it and whenever.
/// </summary>
internal struct SampleRandom
{
    private ulong _state;

    public SampleRandom(long seed, long epoch, long index)
    {
        _state = Mix((ulong)seed ^ 0x9E3779B97F4A7C15UL);
        _state = Mix(_state ^ (ulong)epoch * 0xBF58476D1CE4E5B9UL);
        _state = Mix(_state ^ (ulong)index * 0x94D049BB133111EBUL);
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public ulong NextULong()
    {
        _state += 0x9E3779B97F4A7C15UL;
        return Mix(_state);
    }

    /// <summary>Uniform in [0, 1).</summary>
    public double NextDouble() => (NextULong() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform integer in [lo, hi] inclusive.</summary>
    public int NextInt(int lo, int hi)
    {
        if (hi <= lo) return lo;
        ulong span = (ulong)(hi - lo) + 1;
        return lo + (int)(NextULong() % span);
    }

    /// <summary>A seeded Fisher-Yates permutation of 0..n-1.</summary>
    public static int[] Permutation(int n, long seed, long epoch)
    {
        var rng = new SampleRandom(seed, epoch, -1);
        var p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        for (int i = n - 1; i > 0; i--)
        {
            int j = (int)(rng.NextULong() % (ulong)(i + 1));
            (p[i], p[j]) = (p[j], p[i]);
        }
        return p;
    }
}
