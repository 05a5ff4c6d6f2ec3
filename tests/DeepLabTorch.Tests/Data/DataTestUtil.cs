using System.Diagnostics;
using DeepLabTorch.Data;

namespace DeepLabTorch.Tests.Data;

/// <summary>Temp folders, the reference scripts and tiny synthetic trees for the data tests.</summary>
internal static class DataTestUtil
{
    public static string TempDir(string name)
    {
        var dir = Path.Combine(Path.GetTempPath(), "dlt-data-tests", name + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    public static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "DeepLabTorch.sln"))) return d.FullName;
        throw new InvalidOperationException("repository root not found");
    }

    /// <summary>Runs tests/reference/SCRIPT with Debian's python3; returns stdout, throws on failure.</summary>
    public static string Python(string script, params string[] args)
    {
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(RepoRoot(), "tests", "reference", script));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{script} failed ({p.ExitCode}): {stderr}");
        return stdout.Result;
    }

    private static readonly Lazy<string> ImageFixtureDir = new(() =>
    {
        var dir = TempDir("fixtures");
        Python("data_fixtures.py", "images", dir);
        return dir;
    });

    private static readonly Lazy<string> MatFixtureDir = new(() =>
    {
        var dir = TempDir("mat");
        Python("data_fixtures.py", "mat", dir);
        return dir;
    });

    /// <summary>The PIL-made image fixtures (made once per test run).</summary>
    public static string ImageFixtures => ImageFixtureDir.Value;
    public static string MatFixtures => MatFixtureDir.Value;

    /// <summary>
    /// Writes a tiny VOC tree: ids "img{i}", images of w x h whose colour encodes the class
    /// (class c -> RGB (c*10, 255-c*10, 128)), masks with a class-c rectangle on background, a 255 border.
    /// </summary>
    public static string TinyVoc(string dir, string[] ids, string[] train, string[] val, int w = 40, int h = 30)
    {
        var voc = Path.Combine(dir, "VOCdevkit", "VOC2012");
        Directory.CreateDirectory(Path.Combine(voc, "JPEGImages"));
        Directory.CreateDirectory(Path.Combine(voc, "SegmentationClass"));
        Directory.CreateDirectory(Path.Combine(voc, "ImageSets", "Segmentation"));
        for (int i = 0; i < ids.Length; i++)
        {
            var (rgb, mask) = TwoRegionSample(w, h, 1 + i % 20);
            // PNG bytes under a .jpg name: decoding goes by signature, and lossless pixels make exact checks possible.
            ImageCodec.WritePng(Path.Combine(voc, "JPEGImages", ids[i] + ".jpg"), rgb, h, w);
            ImageCodec.WritePalettePng(Path.Combine(voc, "SegmentationClass", ids[i] + ".png"), mask, h, w);
        }
        File.WriteAllLines(Path.Combine(voc, "ImageSets", "Segmentation", "train.txt"), train);
        File.WriteAllLines(Path.Combine(voc, "ImageSets", "Segmentation", "val.txt"), val);
        File.WriteAllLines(Path.Combine(voc, "ImageSets", "Segmentation", "trainval.txt"), train.Concat(val));
        return voc;
    }

    /// <summary>Left part background (class 0, black-ish), right part class c, coloured by class.</summary>
    public static (byte[] Rgb, byte[] Mask) TwoRegionSample(int w, int h, int cls)
    {
        var rgb = new byte[w * h * 3];
        var mask = new byte[w * h];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int c = x >= w / 3 ? cls : 0;
                mask[y * w + x] = (byte)c;
                rgb[(y * w + x) * 3] = (byte)(c * 10);
                rgb[(y * w + x) * 3 + 1] = (byte)(255 - c * 10);
                rgb[(y * w + x) * 3 + 2] = 128;
            }
        return (rgb, mask);
    }

    public static byte[] Bin(string path) => File.ReadAllBytes(path);
}
