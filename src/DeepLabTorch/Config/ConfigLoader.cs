using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace DeepLabTorch.Config;

/// <summary>
/// Defaults (the record initialisers) → an optional JSON file (with at most one level of "base") →
/// CLI overrides. Unknown keys and values of the wrong type are errors that name the file and key.
/// </summary>
internal static class ConfigLoader
{
    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        WriteIndented = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        NumberHandling = JsonNumberHandling.Strict,
    };

    /// <summary>The JSON key of every settable property of T.</summary>
    public static IReadOnlyDictionary<string, PropertyInfo> Keys<T>() =>
        typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanWrite && p.GetCustomAttribute<JsonIgnoreAttribute>() is null)
            .ToDictionary(p => JsonNamingPolicy.SnakeCaseLower.ConvertName(p.Name), p => p);

    /// <summary>Reads a JSON config file (and its base, if any) into T on top of T's defaults.</summary>
    public static T Load<T>(string path) where T : new()
    {
        var obj = ReadObject(path);
        if (obj.TryGetPropertyValue("base", out var baseNode))
        {
            if (baseNode is not JsonValue v || !v.TryGetValue<string>(out var baseName))
                throw new UserException($"{path}: key 'base' must be a file name (string)");
            var basePath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".", baseName);
            var baseObj = ReadObject(basePath);
            if (baseObj.ContainsKey("base"))
                throw new UserException($"{basePath}: a base config cannot itself have a 'base' (one level of inheritance only)");
            Validate<T>(baseObj, basePath);
            obj.Remove("base");
            foreach (var (k, n) in obj.ToList())
            {
                obj.Remove(k);
                baseObj[k] = n;
            }
            obj = baseObj;
        }
        Validate<T>(obj, path);
        try
        {
            return obj.Deserialize<T>(JsonOptions) ?? new T();
        }
        catch (JsonException e)
        {
            var key = e.Path is { Length: > 2 } p ? p.TrimStart('$', '.').Split('[')[0] : "?";
            throw new UserException($"{path}: key '{key}' has a value of the wrong type ({e.Message.Split(" Path:")[0]})");
        }
    }

    private static JsonObject ReadObject(string path)
    {
        if (!File.Exists(path)) throw new UserException($"config file not found: {path}");
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(File.ReadAllText(path), documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new UserException($"{path}: not valid JSON ({e.Message})");
        }
        return node as JsonObject ?? throw new UserException($"{path}: the config must be a JSON object");
    }

    /// <summary>Rejects unknown keys and values whose JSON kind cannot fit the property.</summary>
    private static void Validate<T>(JsonObject obj, string path)
    {
        var keys = Keys<T>();
        foreach (var (k, n) in obj)
        {
            if (k == "base") continue;
            if (!keys.TryGetValue(k, out var prop))
            {
                var near = keys.Keys.OrderBy(x => Distance(x, k)).First();
                throw new UserException($"{path}: unknown key '{k}'" + (Distance(near, k) <= 3 ? $" (did you mean '{near}'?)" : ""));
            }
            var t = Nullable.GetUnderlyingType(prop.PropertyType) ?? prop.PropertyType;
            var kind = n?.GetValueKind() ?? JsonValueKind.Null;
            var ok = kind switch
            {
                JsonValueKind.Null => IsNullable(prop),
                JsonValueKind.True or JsonValueKind.False => t == typeof(bool),
                JsonValueKind.String => t == typeof(string),
                JsonValueKind.Number => t == typeof(int) ? IsInt(n!, int.MinValue, int.MaxValue)
                    : t == typeof(long) ? IsInt(n!, long.MinValue, long.MaxValue)
                    : t == typeof(double) || t == typeof(float),
                JsonValueKind.Array => t.IsArray,
                _ => false,
            };
            if (!ok) throw new UserException($"{path}: key '{k}' must be {Describe(prop)}, not {Kind(kind)}");
        }
    }

    private static bool IsNullable(PropertyInfo p) =>
        p.PropertyType.IsValueType ? Nullable.GetUnderlyingType(p.PropertyType) != null : new NullabilityInfoContext().Create(p).WriteState != NullabilityState.NotNull;

    private static bool IsInt(JsonNode n, double min, double max) =>
        n.AsValue().TryGetValue<double>(out var d) && Math.Floor(d) == d && d >= min && d <= max;

    private static string Describe(PropertyInfo p)
    {
        var t = Nullable.GetUnderlyingType(p.PropertyType) ?? p.PropertyType;
        var s = t == typeof(bool) ? "true or false" : t == typeof(string) ? "a string" : t == typeof(int) || t == typeof(long) ? "an integer"
            : t == typeof(double) ? "a number" : t.IsArray ? "an array" : t.Name;
        return IsNullable(p) ? s + " or null" : s;
    }

    private static string Kind(JsonValueKind k) => k switch
    {
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Number => "a number",
        JsonValueKind.String => "a string",
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        _ => "null",
    };

    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (var j = 0; j <= b.Length; j++) d[0, j] = j;
        for (var i = 1; i <= a.Length; i++)
            for (var j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return d[a.Length, b.Length];
    }

    /// <summary>Writes a config as indented snake_case JSON (the run's resolved config.json).</summary>
    public static void Save<T>(T config, string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir != null) Directory.CreateDirectory(dir);
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(config, JsonOptions) + "\n");
        File.Move(tmp, path, overwrite: true);
    }

    public static string ToJson<T>(T config) => JsonSerializer.Serialize(config, JsonOptions);
}
