using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Checkpoints;

/// <summary>
/// The safetensors format: 8-byte little-endian header length, a JSON header (tensor name →
/// dtype, shape, [begin, end) offsets into the data section; optional "__metadata__" string map),
/// then the raw little-endian tensor bytes.
/// </summary>
internal static class Safetensors
{
    /// <summary>The largest header we accept, as the format's own reader does.</summary>
    public const long MaxHeaderBytes = 100_000_000;
    public const int MaxRank = 32;

    private static readonly (string Name, ScalarType Type)[] DtypeTable =
    {
        ("F32", ScalarType.Float32), ("F16", ScalarType.Float16), ("BF16", ScalarType.BFloat16), ("F64", ScalarType.Float64),
        ("I64", ScalarType.Int64), ("I32", ScalarType.Int32), ("I16", ScalarType.Int16), ("I8", ScalarType.Int8),
        ("U8", ScalarType.Byte), ("BOOL", ScalarType.Bool),
    };

    public static string DtypeName(ScalarType t)
    {
        foreach (var (n, s) in DtypeTable) if (s == t) return n;
        throw new NotSupportedException($"dtype {t} has no safetensors name");
    }

    public static bool TryParseDtype(string name, out ScalarType type)
    {
        foreach (var (n, s) in DtypeTable)
            if (n == name) { type = s; return true; }
        type = default;
        return false;
    }

    // ------------------------------------------------------------------ writing
    /// <summary>
    /// Writes the tensors (any device, layout or dtype listed above) atomically: a crash leaves either
    /// the previous file or the complete new one.
    /// </summary>
    public static void Write(string path, IReadOnlyDictionary<string, torch.Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = BuildHeader(tensors, metadata, out var sizes);
        AtomicFile.Write(path, s => WriteTo(s, header, tensors, sizes));
    }

    /// <summary>The same bytes Write puts in a file, into any stream (not atomic).</summary>
    public static void WriteTo(Stream stream, IReadOnlyDictionary<string, torch.Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = BuildHeader(tensors, metadata, out var sizes);
        WriteTo(stream, header, tensors, sizes);
    }

    private static byte[] BuildHeader(IReadOnlyDictionary<string, torch.Tensor> tensors, IReadOnlyDictionary<string, string>? metadata, out long[] sizes)
    {
        sizes = new long[tensors.Count];
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            int i = 0;
            foreach (var (name, t) in tensors)
            {
                if (name == "__metadata__") throw new ArgumentException("'__metadata__' cannot name a tensor");
                var n = checked(t.numel() * t.element_size());
                sizes[i++] = n;
                w.WriteStartObject(name);
                w.WriteString("dtype", DtypeName(t.dtype));
                w.WriteStartArray("shape");
                foreach (var d in t.shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + n);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += n;
            }
            w.WriteEndObject();
        }
        // Pad with spaces so the data section starts 8-byte aligned (allowed by the format).
        var json = ms.ToArray();
        int padded = (json.Length + 7) / 8 * 8;
        var header = new byte[padded];
        json.CopyTo(header, 0);
        header.AsSpan(json.Length).Fill((byte)' ');
        return header;
    }

    private static unsafe void WriteTo(Stream s, byte[] header, IReadOnlyDictionary<string, torch.Tensor> tensors, long[] sizes)
    {
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Length);
        s.Write(len);
        s.Write(header);
        int i = 0;
        foreach (var t in tensors.Values)
        {
            long n = sizes[i++];
            if (n == 0) continue;
            using var scope = torch.NewDisposeScope();
            var c = t.detach().cpu().contiguous();
            var p = (byte*)c.DataPtr();
            for (long done = 0; done < n;)
            {
                int chunk = (int)Math.Min(n - done, 1 << 30);
                s.Write(new ReadOnlySpan<byte>(p + done, chunk));
                done += chunk;
            }
        }
    }

    // ------------------------------------------------------------------ reading
    /// <summary>
    /// Reads and validates a file: the whole header is checked before any tensor memory is
    /// allocated, then each tensor's bytes are read straight into its own storage.
    /// </summary>
    public static SafetensorsFile Read(string path)
    {
        FileStream fs;
        try { fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16); }
        catch (FileNotFoundException) { throw new CheckpointException(path, "file not found"); }
        catch (DirectoryNotFoundException) { throw new CheckpointException(path, "file not found"); }
        catch (UnauthorizedAccessException e) { throw new CheckpointException(path, "permission denied", e); }
        using (fs)
        {
            var layout = ReadLayout(path, fs);
            var result = new Dictionary<string, torch.Tensor>(layout.Entries.Count);
            try
            {
                foreach (var e in layout.Entries)
                    result[e.Name] = ReadTensor(path, fs, layout.DataStart, e);
            }
            catch
            {
                foreach (var t in result.Values) t.Dispose();
                throw;
            }
            return new SafetensorsFile(path, result, layout.Metadata);
        }
    }

    /// <summary>Only the header: names, dtypes, shapes and metadata (no tensor data is read).</summary>
    public static SafetensorsLayout ReadLayout(string path)
    {
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            return ReadLayout(path, fs);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new CheckpointException(path, "file not found");
        }
    }

    private static unsafe torch.Tensor ReadTensor(string path, FileStream fs, long dataStart, SafetensorsEntry e)
    {
        var t = torch.empty(e.Shape, e.Dtype).DetachFromDisposeScope();
        try
        {
            long n = e.End - e.Begin;
            if (n == 0) return t;
            fs.Seek(dataStart + e.Begin, SeekOrigin.Begin);
            var p = (byte*)t.DataPtr();
            for (long done = 0; done < n;)
            {
                int chunk = (int)Math.Min(n - done, 1 << 30);
                fs.ReadExactly(new Span<byte>(p + done, chunk));
                done += chunk;
            }
            if (e.Dtype == ScalarType.Bool)
                for (long i = 0; i < n; i++)
                    if (p[i] > 1) throw new CheckpointException(path, $"tensor '{e.Name}': BOOL value {p[i]} is neither 0 nor 1");
            return t;
        }
        catch (EndOfStreamException)
        {
            t.Dispose();
            throw new CheckpointException(path, $"tensor '{e.Name}': the file ended early");
        }
        catch
        {
            t.Dispose();
            throw;
        }
    }

    internal static SafetensorsLayout ReadLayout(string path, Stream fs)
    {
        long fileLength = fs.Length;
        if (fileLength < 8) throw new CheckpointException(path, $"not a safetensors file: {fileLength} bytes is shorter than the 8-byte header length");
        Span<byte> len = stackalloc byte[8];
        fs.Seek(0, SeekOrigin.Begin);
        fs.ReadExactly(len);
        ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(len);
        if (headerLen > MaxHeaderBytes)
            throw new CheckpointException(path, $"header length {headerLen} exceeds the {MaxHeaderBytes}-byte limit");
        if (headerLen > (ulong)(fileLength - 8))
            throw new CheckpointException(path, $"header length {headerLen} runs past the end of the file ({fileLength} bytes)");
        if (headerLen < 2) throw new CheckpointException(path, $"header length {headerLen} is too small for a JSON object");
        var headerBytes = new byte[(int)headerLen];
        fs.ReadExactly(headerBytes);
        long dataStart = 8 + (long)headerLen;
        long dataLength = fileLength - dataStart;

        string json;
        try { json = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(headerBytes); }
        catch (DecoderFallbackException) { throw new CheckpointException(path, "the header is not valid UTF-8"); }

        JsonDocument doc;
        try { doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 8 }); }
        catch (JsonException e) { throw new CheckpointException(path, "the header is not valid JSON: " + e.Message); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new CheckpointException(path, "the header is not a JSON object");
            var names = new HashSet<string>(StringComparer.Ordinal);
            var entries = new List<SafetensorsEntry>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (!names.Add(prop.Name)) throw new CheckpointException(path, $"the header names '{prop.Name}' twice");
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind != JsonValueKind.Object)
                        throw new CheckpointException(path, "__metadata__ is not a JSON object");
                    foreach (var m in prop.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String)
                            throw new CheckpointException(path, $"__metadata__ value '{m.Name}' is not a string");
                        if (!metadata.TryAdd(m.Name, m.Value.GetString()!))
                            throw new CheckpointException(path, $"__metadata__ names '{m.Name}' twice");
                    }
                    continue;
                }
                entries.Add(ParseEntry(path, prop));
            }

            // Offsets must tile the data section exactly: sorted, no gaps, no overlaps, nothing after.
            var sorted = entries.OrderBy(e => e.Begin).ThenBy(e => e.End).ToList();
            long expected = 0;
            foreach (var e in sorted)
            {
                if (e.Begin != expected)
                    throw new CheckpointException(path, e.Begin < expected
                        ? $"tensor '{e.Name}' [{e.Begin}, {e.End}) overlaps the previous tensor (which ends at {expected})"
                        : $"tensor '{e.Name}' starts at {e.Begin}, leaving a gap after offset {expected}");
                if (e.End > dataLength)
                    throw new CheckpointException(path, $"tensor '{e.Name}' [{e.Begin}, {e.End}) runs past the data section ({dataLength} bytes)");
                expected = e.End;
            }
            if (expected != dataLength)
                throw new CheckpointException(path, $"the tensors cover {expected} bytes but the data section holds {dataLength}");
            return new SafetensorsLayout(entries, metadata, dataStart);
        }
    }

    private static SafetensorsEntry ParseEntry(string path, JsonProperty prop)
    {
        string name = prop.Name;
        var v = prop.Value;
        if (v.ValueKind != JsonValueKind.Object) throw new CheckpointException(path, $"tensor '{name}': entry is not a JSON object");
        string? dtypeName = null;
        long[]? shape = null;
        long[]? offsets = null;
        foreach (var f in v.EnumerateObject())
        {
            switch (f.Name)
            {
                case "dtype":
                    if (f.Value.ValueKind != JsonValueKind.String) throw new CheckpointException(path, $"tensor '{name}': dtype is not a string");
                    dtypeName = f.Value.GetString();
                    break;
                case "shape": shape = ReadLongs(path, name, "shape", f.Value, MaxRank); break;
                case "data_offsets": offsets = ReadLongs(path, name, "data_offsets", f.Value, 2); break;
                default: throw new CheckpointException(path, $"tensor '{name}': unknown field '{f.Name}'");
            }
        }
        if (dtypeName is null || shape is null || offsets is null)
            throw new CheckpointException(path, $"tensor '{name}': needs dtype, shape and data_offsets");
        if (!TryParseDtype(dtypeName, out var dtype))
            throw new CheckpointException(path, $"tensor '{name}': unknown or unsupported dtype '{dtypeName}'");
        if (offsets.Length != 2) throw new CheckpointException(path, $"tensor '{name}': data_offsets needs two numbers");
        long begin = offsets[0], end = offsets[1];
        if (end < begin) throw new CheckpointException(path, $"tensor '{name}': data_offsets [{begin}, {end}) end before they begin");
        long bytes;
        try
        {
            long numel = 1;
            foreach (var d in shape) numel = checked(numel * d);
            bytes = checked(numel * dtype.ElementSize());
        }
        catch (OverflowException)
        {
            throw new CheckpointException(path, $"tensor '{name}': shape [{string.Join(", ", shape)}] overflows a 64-bit byte count");
        }
        if (bytes != end - begin)
            throw new CheckpointException(path, $"tensor '{name}': {dtypeName} shape [{string.Join(", ", shape)}] needs {bytes} bytes, data_offsets give {end - begin}");
        return new SafetensorsEntry(name, dtype, shape, begin, end);
    }

    private static long[] ReadLongs(string path, string name, string field, JsonElement e, int maxCount)
    {
        if (e.ValueKind != JsonValueKind.Array) throw new CheckpointException(path, $"tensor '{name}': {field} is not an array");
        int n = e.GetArrayLength();
        if (n > maxCount) throw new CheckpointException(path, $"tensor '{name}': {field} has {n} entries (at most {maxCount})");
        var r = new long[n];
        int i = 0;
        foreach (var x in e.EnumerateArray())
        {
            if (x.ValueKind != JsonValueKind.Number || !x.TryGetInt64(out var v) || v < 0)
                throw new CheckpointException(path, $"tensor '{name}': {field} holds '{x.GetRawText()}', not a non-negative 64-bit integer");
            r[i++] = v;
        }
        return r;
    }
}

/// <summary>One header entry; offsets are relative to the data section.</summary>
internal sealed record SafetensorsEntry(string Name, ScalarType Dtype, long[] Shape, long Begin, long End);

/// <summary>A validated header.</summary>
internal sealed record SafetensorsLayout(IReadOnlyList<SafetensorsEntry> Entries, IReadOnlyDictionary<string, string> Metadata, long DataStart);

/// <summary>The tensors of one file (CPU, owned by this object until taken) and its metadata.</summary>
internal sealed class SafetensorsFile : IDisposable
{
    private readonly Dictionary<string, torch.Tensor> _tensors;

    internal SafetensorsFile(string path, Dictionary<string, torch.Tensor> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        Path = path;
        _tensors = tensors;
        Metadata = metadata;
    }

    public string Path { get; }
    public IReadOnlyDictionary<string, torch.Tensor> Tensors => _tensors;
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Hands a tensor to the caller, who must dispose it; this file no longer frees it.</summary>
    public torch.Tensor Take(string name)
    {
        if (!_tensors.Remove(name, out var t)) throw new KeyNotFoundException($"{Path}: no tensor '{name}'");
        return t;
    }

    public void Dispose()
    {
        foreach (var t in _tensors.Values) t.Dispose();
        _tensors.Clear();
    }
}
