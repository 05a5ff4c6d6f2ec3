using System.Text;
using System.Text.RegularExpressions;

namespace DeepLabTorch.Inference;

/// <summary>Turns --input (a file, a folder, or a glob such as "photos/*.jpg" or "data/**/img_?.png") into a sorted file list.</summary>
internal static class InputFiles
{
    /// <summary>Image extensions a folder input picks up (files named directly are taken whatever their extension).</summary>
    public static readonly IReadOnlySet<string> ImageExtensions = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
    {
        ".jpg", ".jpeg", ".png",
    };

    public static bool IsImage(string path) => ImageExtensions.Contains(Path.GetExtension(path));

    /// <summary>
    /// The files for several specs (what a shell makes of an unquoted glob): each expanded in turn, in
    /// the order given, a file named twice kept once. Nothing given is a UserException.
    /// </summary>
    public static IReadOnlyList<string> Expand(IEnumerable<string> specs, bool includeVideo = false)
    {
        var list = specs.ToList();
        if (list.Count == 0) throw new UserException("--input is empty");
        if (list.Count == 1) return Expand(list[0], includeVideo);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        return list.SelectMany(s => Expand(s, includeVideo)).Where(f => seen.Add(Path.GetFullPath(f))).ToList();
    }

    /// <summary>
    /// The files for an input spec, sorted by path (ordinal). A folder yields its images (and, with
    /// includeVideo, videos), not recursing. Nothing found is a UserException naming the spec.
    /// </summary>
    public static IReadOnlyList<string> Expand(string spec, bool includeVideo = false)
    {
        if (string.IsNullOrWhiteSpace(spec)) throw new UserException("--input is empty");
        bool Wanted(string f) => IsImage(f) || (includeVideo && Ffmpeg.IsVideo(f));
        List<string> files;
        if (File.Exists(spec))
        {
            files = new List<string> { spec };
        }
        else if (Directory.Exists(spec))
        {
            files = Directory.EnumerateFiles(spec).Where(Wanted).ToList();
            if (files.Count == 0)
                throw new UserException($"{spec}: the folder holds no {(includeVideo ? "images or videos" : "images")} ({string.Join(", ", ImageExtensions)}{(includeVideo ? ", " + string.Join(", ", Ffmpeg.VideoExtensions) : "")})");
        }
        else if (spec.IndexOfAny(new[] { '*', '?', '[' }) >= 0)
        {
            files = Glob(spec).ToList();
            if (files.Count == 0) throw new UserException($"no file matches '{spec}'");
        }
        else
        {
            throw new UserException($"{spec}: no such file or folder");
        }
        files.Sort(StringComparer.Ordinal);
        return files;
    }

    /// <summary>
    /// Files matching a glob: '*' and '?' within one path part, '**' across parts, '[abc]' sets.
    /// The search starts at the longest leading folder without wildcards.
    /// </summary>
    public static IEnumerable<string> Glob(string pattern)
    {
        var norm = pattern.Replace('\\', '/');
        var parts = norm.Split('/');
        int fixedParts = 0;
        while (fixedParts < parts.Length - 1 && parts[fixedParts].IndexOfAny(new[] { '*', '?', '[' }) < 0) fixedParts++;
        var baseDir = string.Join('/', parts.Take(fixedParts));
        var rest = string.Join('/', parts.Skip(fixedParts));
        var root = baseDir.Length == 0 ? (norm.StartsWith('/') ? "/" : ".") : baseDir;
        if (norm.StartsWith('/') && baseDir.Length == 0) rest = rest.TrimStart('/');
        if (!Directory.Exists(root)) yield break;
        var regex = new Regex("^" + ToRegex(rest) + "$", RegexOptions.CultureInvariant);
        bool deep = rest.Contains('/');
        var options = new EnumerationOptions { RecurseSubdirectories = deep, IgnoreInaccessible = true, AttributesToSkip = FileAttributes.System };
        foreach (var f in Directory.EnumerateFiles(root, "*", options))
        {
            var rel = Path.GetRelativePath(root, f).Replace('\\', '/');
            if (regex.IsMatch(rel)) yield return baseDir.Length == 0 && root == "." ? rel : f;
        }
    }

    private static string ToRegex(string glob)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < glob.Length; i++)
        {
            char c = glob[i];
            if (c == '*' && i + 1 < glob.Length && glob[i + 1] == '*')
            {
                // "**/" matches zero or more folders; a bare "**" anything.
                bool slash = i + 2 < glob.Length && glob[i + 2] == '/';
                sb.Append(slash ? "(?:.*/)?" : ".*");
                i += slash ? 2 : 1;
            }
            else if (c == '*') sb.Append("[^/]*");
            else if (c == '?') sb.Append("[^/]");
            else if (c == '[')
            {
                int end = glob.IndexOf(']', i + 1);
                if (end < 0) { sb.Append(@"\["); continue; }
                var set = glob[(i + 1)..end];
                sb.Append('[').Append(set.StartsWith('!') ? "^" + Regex.Escape(set[1..]) : Regex.Escape(set)).Append(']');
                i = end;
            }
            else sb.Append(Regex.Escape(c.ToString()));
        }
        return sb.ToString();
    }
}
