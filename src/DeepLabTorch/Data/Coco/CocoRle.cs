namespace DeepLabTorch.Data;

/// <summary>
/// COCO's run-length masks, as pycocotools defines them: runs over the pixels in column-major order (index x·h + y),
/// alternating background and foreground, starting with background (a leading 0 when the first pixel is set).
/// Polygons become such runs by pycocotools' rasteriser, reproduced here to the pixel: a pixel belongs to the
/// polygon when its centre (x + ½, y + ½) lies inside, with the reference's rounding on a 5× grid.
/// </summary>
internal static class CocoRle
{
    /// <summary>
    /// Decodes a compressed RLE string ("counts" as a string): 5 bits per character in ASCII 48-111, a continuation
    /// bit 0x20 and a sign bit 0x10 on the last character; from the fourth count on, each is stored as the difference
    /// from the count two places before it.
    /// </summary>
    /// <exception cref="FormatException">A character outside 48-111, a count cut short, or a negative count.</exception>
    public static uint[] FromString(string s)
    {
        var counts = new List<uint>(s.Length);
        int p = 0;
        while (p < s.Length)
        {
            long value = 0;
            int shift = 0;
            while (true)
            {
                if (p >= s.Length) throw new FormatException($"the RLE string ends inside a count (at character {p})");
                int c = s[p] - 48;
                if (c is < 0 or > 63) throw new FormatException($"character '{s[p]}' at {p} is outside the RLE alphabet (ASCII 48-111)");
                p++;
                if (shift > 55) throw new FormatException($"count {counts.Count} is too long (more than 12 characters)");
                value |= (long)(c & 0x1f) << shift;
                shift += 5;
                if ((c & 0x20) != 0) continue;
                if ((c & 0x10) != 0) value |= -1L << shift; // sign-extend the last group
                break;
            }
            if (counts.Count > 2) value += counts[^2];
            if (value is < 0 or > uint.MaxValue) throw new FormatException($"count {counts.Count} decodes to {value}, outside 0-{uint.MaxValue}");
            counts.Add((uint)value);
        }
        return counts.ToArray();
    }

    /// <summary>
    /// The runs of one polygon (x0, y0, x1, y1, …) on an h×w image, as pycocotools' frPyObjects makes them: the
    /// vertices are rounded on a grid 5× finer than the pixels, the edges are walked point by point on that grid,
    /// and each crossing of a pixel-centre column marks where the polygon starts or stops in that column.
    /// </summary>
    public static uint[] FromPolygon(ReadOnlySpan<double> xy, int height, int width)
    {
        if (xy.Length < 6 || xy.Length % 2 != 0)
            throw new ArgumentException($"a polygon needs at least 3 (x, y) points, got {xy.Length} numbers", nameof(xy));
        const double scale = 5;
        int k = xy.Length / 2;
        var gx = new int[k + 1];
        var gy = new int[k + 1];
        for (int j = 0; j < k; j++)
        {
            // C's (int) cast: truncation toward zero, as the reference rounds.
            gx[j] = (int)(scale * xy[2 * j] + 0.5);
            gy[j] = (int)(scale * xy[2 * j + 1] + 0.5);
        }
        gx[k] = gx[0];
        gy[k] = gy[0];
        var (u, v) = WalkEdges(gx, gy, k);
        var starts = ColumnCrossings(u, v, height, width, scale);
        return RunsFromCrossings(starts, height, width);
    }

    /// <summary>Every grid point along the closed outline, each edge walked along its longer axis.</summary>
    private static (List<int> U, List<int> V) WalkEdges(int[] gx, int[] gy, int k)
    {
        var u = new List<int>();
        var v = new List<int>();
        for (int j = 0; j < k; j++)
        {
            int xs = gx[j], xe = gx[j + 1], ys = gy[j], ye = gy[j + 1];
            int dx = Math.Abs(xe - xs), dy = Math.Abs(ye - ys);
            bool alongX = dx >= dy;
            // Each edge is walked from its lower end, then the points are listed from the edge's real start.
            bool flip = alongX ? xs > xe : ys > ye;
            if (flip)
            {
                (xs, xe) = (xe, xs);
                (ys, ye) = (ye, ys);
            }
            if (alongX)
            {
                double slope = dx == 0 ? 0 : (double)(ye - ys) / dx;
                for (int d = 0; d <= dx; d++)
                {
                    int t = flip ? dx - d : d;
                    u.Add(t + xs);
                    v.Add((int)(ys + slope * t + 0.5));
                }
            }
            else
            {
                double slope = (double)(xe - xs) / dy;
                for (int d = 0; d <= dy; d++)
                {
                    int t = flip ? dy - d : d;
                    v.Add(t + ys);
                    u.Add((int)(xs + slope * t + 0.5));
                }
            }
        }
        return (u, v);
    }

    /// <summary>
    /// Where the outline crosses a pixel-centre column, the column-major index (x·h + y) of the first pixel below
    /// the crossing: the polygon's runs switch there.
    /// </summary>
    private static List<uint> ColumnCrossings(List<int> u, List<int> v, int height, int width, double scale)
    {
        var marks = new List<uint>();
        for (int j = 1; j < u.Count; j++)
        {
            if (u[j] == u[j - 1]) continue;
            double xd = u[j] < u[j - 1] ? u[j] : u[j] - 1;
            xd = (xd + 0.5) / scale - 0.5;
            if (Math.Floor(xd) != xd || xd < 0 || xd > width - 1) continue;
            double yd = Math.Min(v[j], v[j - 1]);
            yd = (yd + 0.5) / scale - 0.5;
            yd = Math.Ceiling(Math.Clamp(yd, 0, height));
            marks.Add((uint)((int)xd * height + (int)yd));
        }
        return marks;
    }

    /// <summary>Sorted switch positions → run lengths; two switches at one place cancel (a zero-length run joins its neighbours).</summary>
    private static uint[] RunsFromCrossings(List<uint> marks, int height, int width)
    {
        marks.Add((uint)(height * width));
        marks.Sort();
        var diffs = new uint[marks.Count];
        uint previous = 0;
        for (int j = 0; j < marks.Count; j++)
        {
            diffs[j] = marks[j] - previous;
            previous = marks[j];
        }
        var runs = new List<uint>(diffs.Length) { diffs[0] };
        for (int j = 1; j < diffs.Length; j++)
        {
            if (diffs[j] > 0)
            {
                runs.Add(diffs[j]);
            }
            else if (++j < diffs.Length)
            {
                runs[^1] += diffs[j];
            }
        }
        return runs.ToArray();
    }

    /// <summary>
    /// Paints the foreground of <paramref name="runs"/> with <paramref name="label"/> into a row-major h×w mask,
    /// only where the mask is still 0: the first instance wins where masks overlap.
    /// </summary>
    /// <returns>False when the runs do not add up to h·w pixels (nothing is painted then).</returns>
    public static bool PaintFirstWins(ReadOnlySpan<uint> runs, byte[] mask, int height, int width, byte label)
    {
        ulong total = 0;
        foreach (var r in runs) total += r;
        if (total != (ulong)height * (ulong)width || mask.Length != height * width) return false;
        long position = 0;
        for (int i = 0; i < runs.Length; i++)
        {
            long end = position + runs[i];
            if ((i & 1) == 1)
            {
                long x = position / height, y = position - x * height;
                for (long t = position; t < end; t++)
                {
                    ref var pixel = ref mask[y * width + x];
                    if (pixel == 0) pixel = label;
                    if (++y == height)
                    {
                        y = 0;
                        x++;
                    }
                }
            }
            position = end;
        }
        return true;
    }
}
