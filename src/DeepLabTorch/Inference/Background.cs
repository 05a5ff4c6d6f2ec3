using System.Globalization;
using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DeepLabTorch.Inference;

/// <summary>What goes behind the person: a picture, a flat colour, or the frame itself blurred.</summary>
internal abstract record Background
{
    private Background() { }

    public sealed record Picture(string Path) : Background;
    public sealed record Colour(byte R, byte G, byte B) : Background;
    /// <summary>The input blurred; Radius null picks one from the frame size.</summary>
    public sealed record Blur(int? Radius) : Background;

    private static readonly Dictionary<string, (byte, byte, byte)> Names = new(StringComparer.OrdinalIgnoreCase)
    {
        ["black"] = (0, 0, 0), ["white"] = (255, 255, 255), ["red"] = (255, 0, 0), ["green"] = (0, 128, 0),
        ["lime"] = (0, 255, 0), ["blue"] = (0, 0, 255), ["yellow"] = (255, 255, 0), ["cyan"] = (0, 255, 255),
        ["aqua"] = (0, 255, 255), ["magenta"] = (255, 0, 255), ["fuchsia"] = (255, 0, 255), ["gray"] = (128, 128, 128),
        ["grey"] = (128, 128, 128), ["silver"] = (192, 192, 192), ["maroon"] = (128, 0, 0), ["olive"] = (128, 128, 0),
        ["purple"] = (128, 0, 128), ["teal"] = (0, 128, 128), ["navy"] = (0, 0, 128), ["orange"] = (255, 165, 0),
        ["pink"] = (255, 192, 203), ["brown"] = (165, 42, 42),
    };

    /// <summary>The colour names Parse understands.</summary>
    public static IReadOnlyCollection<string> ColourNames => Names.Keys;

    /// <summary>
    /// "blur" or "blur:R", "#RRGGBB" / "#RGB", a colour name, or the path of an image file. Anything else
    /// is a UserException that lists the three forms.
    /// </summary>
    public static Background Parse(string spec)
    {
        var s = spec.Trim();
        if (s.Length == 0) throw new UserException("--background is empty: give an image file, a colour (#RRGGBB or a name) or 'blur'");
        if (s.Equals("blur", StringComparison.OrdinalIgnoreCase)) return new Blur(null);
        if (s.StartsWith("blur:", StringComparison.OrdinalIgnoreCase))
        {
            if (int.TryParse(s[5..], NumberStyles.None, CultureInfo.InvariantCulture, out var r) && r >= 1 && r <= 1000) return new Blur(r);
            throw new UserException($"background '{spec}': the blur radius must be a whole number of pixels from 1 to 1000");
        }
        if (s.StartsWith('#')) return ParseHex(spec, s[1..]);
        if (File.Exists(s)) return new Picture(s);
        if (Names.TryGetValue(s, out var c)) return new Colour(c.Item1, c.Item2, c.Item3);
        if (Directory.Exists(s)) throw new UserException($"background '{spec}' is a folder; give an image file, a colour (#RRGGBB or a name) or 'blur'");
        throw new UserException($"background '{spec}' is neither an existing image file, a colour (#RRGGBB or one of: {string.Join(", ", Names.Keys)}) nor 'blur'");
    }

    private static Colour ParseHex(string spec, string hex)
    {
        if (hex.Length == 3) hex = string.Concat(hex.Select(ch => new string(ch, 2)));
        if (hex.Length == 6 && uint.TryParse(hex, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var v))
            return new Colour((byte)(v >> 16), (byte)(v >> 8), (byte)v);
        throw new UserException($"background colour '{spec}' is not #RRGGBB or #RGB hexadecimal");
    }

    /// <summary>Blur radius used when none is given: about 3% of the short side.</summary>
    public static int AutoBlurRadius(long height, long width) => (int)Math.Max(2, Math.Round(Math.Min(height, width) * 0.03));
}

/// <summary>
/// Builds background frames [1,3,H,W] in [0,1] for a Background. A picture is decoded once (by the
/// caller-supplied decoder) and cached per frame size, scaled to cover the frame and centre-cropped.
/// </summary>
internal sealed class BackgroundRenderer : IDisposable
{
    private readonly Func<string, (byte[] Rgb, int Height, int Width)> _decode;
    private Tensor? _picture;
    private Tensor? _cached;
    private (long, long) _cachedSize;

    public BackgroundRenderer(Background spec, Func<string, (byte[] Rgb, int Height, int Width)> decode)
    {
        Spec = spec;
        _decode = decode;
    }

    public Background Spec { get; }

    /// <summary>The background for this frame [1,3,H,W] in [0,1]; the caller owns it.</summary>
    public Tensor Render(Tensor frame01)
    {
        long h = frame01.size(2), w = frame01.size(3);
        switch (Spec)
        {
            case Background.Colour c:
                {
                    using var scope = NewDisposeScope();
                    var col = tensor(new[] { c.R / 255f, c.G / 255f, c.B / 255f }, new long[] { 1, 3, 1, 1 });
                    return col.expand(1, 3, h, w).contiguous().MoveToOuterDisposeScope();
                }
            case Background.Blur b:
                return BlurImage(frame01, b.Radius ?? Background.AutoBlurRadius(h, w));
            case Background.Picture p:
                if (_cached is null || _cachedSize != (h, w))
                {
                    if (_picture is null)
                    {
                        var (rgb, ph, pw) = _decode(p.Path);
                        _picture = RgbTensors.FromBytes(rgb, ph, pw).DetachFromDisposeScope();
                    }
                    _cached?.Dispose();
                    _cached = Cover(_picture, h, w).DetachFromDisposeScope();
                    _cachedSize = (h, w);
                }
                return _cached.clone();
            default:
                throw new InvalidOperationException($"unknown background {Spec}");
        }
    }

    /// <summary>Three box blurs in a row: close to a Gaussian with sigma ≈ radius·0.8 at O(1) cost per pixel.</summary>
    public static Tensor BlurImage(Tensor rgb01, int radius)
    {
        using var scope = NewDisposeScope();
        var x = rgb01;
        for (int i = 0; i < 3; i++) x = GuidedFilter.BoxMean(x, radius);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>Scales a picture so it covers h×w and crops the centre.</summary>
    public static Tensor Cover(Tensor picture, long h, long w)
    {
        using var scope = NewDisposeScope();
        long ph = picture.size(2), pw = picture.size(3);
        double f = Math.Max((double)h / ph, (double)w / pw);
        long sh = Math.Max(h, (long)Math.Ceiling(ph * f - 1e-9)), sw = Math.Max(w, (long)Math.Ceiling(pw * f - 1e-9));
        var scaled = (sh, sw) == (ph, pw) ? picture : F.interpolate(picture, new[] { sh, sw }, mode: InterpolationMode.Bilinear, align_corners: false);
        var crop = scaled.narrow(2, (sh - h) / 2, h).narrow(3, (sw - w) / 2, w).contiguous();
        return crop.MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        _picture?.Dispose();
        _cached?.Dispose();
        _picture = null;
        _cached = null;
    }
}
