using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace DeepLabTorch.Data;

/// <summary>An image entry of a COCO annotation file.</summary>
internal sealed record CocoImage(long Id, string FileName, int Height, int Width);

/// <summary>One region of an instance: a polygon, uncompressed runs, or a compressed RLE string.</summary>
internal abstract record CocoShape;

internal sealed record CocoPolygon(double[] Xy) : CocoShape;

internal sealed record CocoRuns(uint[] Counts, int Height, int Width) : CocoShape;

internal sealed record CocoRleString(string Counts, int Height, int Width) : CocoShape;

/// <summary>An instance of one of the kept categories, already mapped to its class index.</summary>
internal sealed record CocoInstance(long Id, long ImageId, byte Label, CocoShape[] Shapes);

/// <summary>What an annotation file holds for segmentation: its images in file order, and the kept instances per image in file order.</summary>
internal sealed class CocoAnnotations
{
    public List<CocoImage> Images { get; } = new();
    public Dictionary<long, List<CocoInstance>> InstancesByImage { get; } = new();
    public int InstancesSkipped { get; set; }

    private static readonly IReadOnlySet<string> Arrays = new HashSet<string> { "images", "annotations" };

    /// <summary>Streams <paramref name="path"/>, keeping the instances whose category_id maps to a class.</summary>
    /// <param name="labelOf">category_id → class index (1-255); categories not in it are skipped unread.</param>
    /// <exception cref="DataException">Broken JSON or a malformed entry, naming the file and the entry.</exception>
    public static CocoAnnotations Read(string path, IReadOnlyDictionary<long, byte> labelOf, int initialBuffer = 1 << 20)
    {
        var result = new CocoAnnotations();
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
            JsonArrayStream.Read(stream, Arrays, (array, element) =>
            {
                if (array == "images") result.Images.Add(ParseImage(element));
                else if (ParseInstance(element, labelOf) is { } instance)
                {
                    if (!result.InstancesByImage.TryGetValue(instance.ImageId, out var list))
                        result.InstancesByImage[instance.ImageId] = list = new List<CocoInstance>();
                    list.Add(instance);
                }
                else result.InstancesSkipped++;
            }, initialBuffer);
        }
        catch (JsonException e)
        {
            throw new DataException(path, $"not a valid COCO annotation file: {e.Message}", e);
        }
        catch (Exception e) when (e is FormatException or InvalidOperationException)
        {
            throw new DataException(path, e.Message, e);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw new DataException(path, $"cannot be read: {e.Message}", e);
        }
        return result;
    }

    private static CocoImage ParseImage(ReadOnlySpan<byte> element)
    {
        var r = new Utf8JsonReader(element);
        long? id = null;
        string? file = null;
        int height = 0, width = 0;
        r.Read();
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            var name = r.GetString();
            r.Read();
            switch (name)
            {
                case "id": id = r.GetInt64(); break;
                case "file_name": file = r.GetString(); break;
                case "height": height = r.GetInt32(); break;
                case "width": width = r.GetInt32(); break;
                default: r.Skip(); break;
            }
        }
        string where = id is long i ? $"image {i}" : $"an image entry ({Snippet(element)})";
        if (id == null || string.IsNullOrEmpty(file)) throw new FormatException($"{where} lacks its id or file_name");
        if (height <= 0 || width <= 0 || (long)height * width > int.MaxValue)
            throw new FormatException($"{where} ({file}) has the size {width}x{height} (WxH)");
        if (file.Any(char.IsControl)) throw new FormatException($"{where} has a control character in its file name");
        if (Path.IsPathRooted(file) || file.Split('/', '\\').Contains(".."))
            throw new FormatException($"{where} has the file name '{file}', which leaves the image folder");
        return new CocoImage(id.Value, file, height, width);
    }

    private static CocoInstance? ParseInstance(ReadOnlySpan<byte> element, IReadOnlyDictionary<long, byte> labelOf)
    {
        // Two passes: COCO writes "id" after "segmentation", and an error should name the annotation. The first pass
        // skips the segmentation, so the categories that are not kept cost only a skip.
        var r = new Utf8JsonReader(element);
        long id = -1, image = -1, category = -1;
        bool hasSegmentation = false;
        r.Read();
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            var name = r.GetString();
            r.Read();
            switch (name)
            {
                case "id": id = r.GetInt64(); break;
                case "image_id": image = r.GetInt64(); break;
                case "category_id": category = r.GetInt64(); break;
                default:
                    hasSegmentation |= name == "segmentation";
                    r.Skip();
                    break;
            }
        }
        if (image < 0 || category < 0) throw new FormatException($"annotation {id} lacks its image_id or category_id");
        if (!labelOf.TryGetValue(category, out var label)) return null;
        if (!hasSegmentation) throw new FormatException($"annotation {id} (image {image}) has no segmentation");
        r = new Utf8JsonReader(element);
        r.Read();
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            bool wanted = r.ValueTextEquals("segmentation"u8);
            r.Read();
            if (wanted) return new CocoInstance(id, image, label, ParseSegmentation(ref r, id));
            r.Skip();
        }
        throw new UnreachableException();
    }

    private static CocoShape[] ParseSegmentation(ref Utf8JsonReader r, long id)
    {
        if (r.TokenType == JsonTokenType.StartObject) return new[] { ParseRle(ref r, id) };
        if (r.TokenType != JsonTokenType.StartArray) throw new FormatException($"annotation {id}: segmentation is neither polygons nor RLE");
        var polygons = new List<CocoShape>();
        var xy = new List<double>();
        while (r.Read() && r.TokenType == JsonTokenType.StartArray)
        {
            xy.Clear();
            while (r.Read() && r.TokenType == JsonTokenType.Number) xy.Add(r.GetDouble());
            if (r.TokenType != JsonTokenType.EndArray) throw new FormatException($"annotation {id}: polygon {polygons.Count} holds a {r.TokenType}, not a number");
            if (xy.Count < 6 || xy.Count % 2 != 0)
                throw new FormatException($"annotation {id}: polygon {polygons.Count} has {xy.Count} numbers; a polygon needs at least 3 (x, y) points");
            polygons.Add(new CocoPolygon(xy.ToArray()));
        }
        if (r.TokenType != JsonTokenType.EndArray) throw new FormatException($"annotation {id}: segmentation holds a {r.TokenType}, not a polygon");
        return polygons.ToArray();
    }

    private static CocoShape ParseRle(ref Utf8JsonReader r, long id)
    {
        int height = -1, width = -1;
        uint[]? runs = null;
        string? compressed = null;
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            var name = r.GetString();
            r.Read();
            if (name == "size" && r.TokenType == JsonTokenType.StartArray)
            {
                r.Read();
                height = r.GetInt32();
                r.Read();
                width = r.GetInt32();
                if (!r.Read() || r.TokenType != JsonTokenType.EndArray) throw new FormatException($"annotation {id}: an RLE size is [height, width]");
            }
            else if (name == "counts" && r.TokenType == JsonTokenType.String) compressed = r.GetString();
            else if (name == "counts" && r.TokenType == JsonTokenType.StartArray)
            {
                var list = new List<uint>();
                while (r.Read() && r.TokenType == JsonTokenType.Number) list.Add(r.GetUInt32());
                runs = list.ToArray();
            }
            else r.Skip();
        }
        if (height < 0 || width < 0 || (runs == null && compressed == null))
            throw new FormatException($"annotation {id}: an RLE needs counts and size");
        return compressed != null ? new CocoRleString(compressed, height, width) : new CocoRuns(runs!, height, width);
    }

    private static string Snippet(ReadOnlySpan<byte> element) =>
        Encoding.UTF8.GetString(element[..Math.Min(element.Length, 80)]);
}
