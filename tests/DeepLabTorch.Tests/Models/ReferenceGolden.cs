using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Models;

/// <summary>
/// Golden tensors written by tests/reference/model_deeplab.py (an independent PyTorch DeepLabV3+) or another
/// reference script in the same format (model_bisenet.py), generated into a temp folder at test time and deleted on Dispose.
/// </summary>
public sealed class ReferenceGolden : IDisposable
{
    private readonly Dictionary<string, Tensor> _tensors = new();
    private readonly List<string> _order = new();
    private readonly string _dir;

    private ReferenceGolden(string dir)
    {
        _dir = dir;
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "index.json")));
        Meta = doc.RootElement.GetProperty("meta").Clone();
        var data = File.ReadAllBytes(Path.Combine(dir, "data.bin"));
        foreach (var e in doc.RootElement.GetProperty("entries").EnumerateArray())
        {
            var name = e.GetProperty("name").GetString()!;
            var shape = e.GetProperty("shape").EnumerateArray().Select(v => v.GetInt64()).ToArray();
            var offset = e.GetProperty("offset").GetInt32();
            var nbytes = e.GetProperty("nbytes").GetInt32();
            var raw = data.AsSpan(offset, nbytes);
            var t = e.GetProperty("dtype").GetString() switch
            {
                "float32" => TensorExtensions.FromArray(MemoryMarshal.Cast<byte, float>(raw).ToArray(), shape),
                "float64" => TensorExtensions.FromArray(MemoryMarshal.Cast<byte, double>(raw).ToArray(), shape),
                "int64" => TensorExtensions.FromArray(MemoryMarshal.Cast<byte, long>(raw).ToArray(), shape),
                var d => throw new InvalidDataException($"{dir}: unknown dtype {d} for {name}"),
            };
            _tensors[name] = t.DetachFromDisposeScope();
            _order.Add(name);
        }
    }

    public JsonElement Meta { get; }

    public Tensor this[string name] => _tensors.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"golden file has no '{name}'");

    /// <summary>Entries whose name starts with prefix, the prefix removed, in file order.</summary>
    public Dictionary<string, Tensor> WithPrefix(string prefix)
    {
        var d = new Dictionary<string, Tensor>();
        foreach (var n in _order)
            if (n.StartsWith(prefix, StringComparison.Ordinal)) d[n[prefix.Length..]] = _tensors[n];
        return d;
    }

    /// <summary>A file the script wrote next to the golden tensors (model_bisenet.py's model.pth).</summary>
    public string FileInFolder(string name) => Path.Combine(_dir, name);

    /// <summary>Runs the reference script (model_deeplab.py) with these arguments (plus --out) and loads what it wrote.</summary>
    public static ReferenceGolden Generate(params string[] args) => GenerateFrom("model_deeplab.py", args);

    /// <summary>Runs another reference script of tests/reference that writes the same format (index.json, data.bin) into --out.</summary>
    public static ReferenceGolden GenerateFrom(string script, params string[] args)
    {
        var dir = Path.Combine(Path.GetTempPath(), "dlt-models-" + Guid.NewGuid().ToString("N"));
        try
        {
            RunPython(ScriptPath(script), args.Concat(new[] { "--out", dir }).ToArray());
            return new ReferenceGolden(dir);
        }
        catch
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
            throw;
        }
    }

    public static string ScriptPath(string name)
    {
        var p = Path.Combine(Python.ReferenceDir, name);
        return File.Exists(p) ? p : throw new FileNotFoundException($"{p} not found");
    }

    public static string RepoFile(params string[] parts)
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var p = Path.Combine(new[] { d.FullName }.Concat(parts).ToArray());
            if (File.Exists(p)) return p;
        }
        throw new FileNotFoundException($"{Path.Combine(parts)} not found above {AppContext.BaseDirectory}");
    }

    /// <summary>Runs Debian's python3 (which has torch, at its own thread count) and returns stdout; a failure throws with stderr.</summary>
    public static string RunPython(string script, params string[] args) =>
        Python.RunProcess(Python.Exe, new[] { script }.Concat(args).ToArray(), timeoutSeconds: 300, ompThreads: null);

    public void Dispose()
    {
        foreach (var t in _tensors.Values) t.Dispose();
        _tensors.Clear();
        if (Directory.Exists(_dir)) Directory.Delete(_dir, true);
    }
}
