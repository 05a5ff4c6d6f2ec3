namespace DeepLabTorch.Data.Png;

/// <summary>The five PNG row filters (specification section 9), both directions.</summary>
internal static class PngFilters
{
    public const int None = 0, Sub = 1, Up = 2, Average = 3, Paeth = 4;

    /// <summary>Undoes filter <paramref name="filter"/> on <paramref name="row"/> in place; prev is empty for a pass's first row.</summary>
    public static void Unfilter(string name, int filter, Span<byte> row, ReadOnlySpan<byte> prev, int stride)
    {
        switch (filter)
        {
            case None:
                break;
            case Sub:
                for (int i = stride; i < row.Length; i++) row[i] += row[i - stride];
                break;
            case Up:
                for (int i = 0; i < prev.Length; i++) row[i] += prev[i];
                break;
            case Average:
                for (int i = 0; i < row.Length; i++)
                {
                    int left = i >= stride ? row[i - stride] : 0, up = prev.IsEmpty ? 0 : prev[i];
                    row[i] += (byte)((left + up) >> 1);
                }
                break;
            case Paeth:
                for (int i = 0; i < row.Length; i++)
                {
                    int a = i >= stride ? row[i - stride] : 0, b = prev.IsEmpty ? 0 : prev[i];
                    int c = i >= stride && !prev.IsEmpty ? prev[i - stride] : 0;
                    row[i] += PaethPredictor(a, b, c);
                }
                break;
            default:
                throw new DataException(name, $"corrupt PNG (unknown row filter {filter})");
        }
    }

    /// <summary>Writes filter <paramref name="filter"/> of row into out (same length); prev is empty for the first row.</summary>
    public static void Filter(int filter, ReadOnlySpan<byte> row, ReadOnlySpan<byte> prev, int stride, Span<byte> output)
    {
        for (int i = 0; i < row.Length; i++)
        {
            int a = i >= stride ? row[i - stride] : 0, b = prev.IsEmpty ? 0 : prev[i];
            int c = i >= stride && !prev.IsEmpty ? prev[i - stride] : 0;
            int predicted = filter switch
            {
                Sub => a,
                Up => b,
                Average => (a + b) >> 1,
                Paeth => PaethPredictor(a, b, c),
                _ => 0,
            };
            output[i] = (byte)(row[i] - predicted);
        }
    }

    public static byte PaethPredictor(int a, int b, int c)
    {
        int p = a + b - c;
        int pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        if (pa <= pb && pa <= pc) return (byte)a;
        return pb <= pc ? (byte)b : (byte)c;
    }
}
