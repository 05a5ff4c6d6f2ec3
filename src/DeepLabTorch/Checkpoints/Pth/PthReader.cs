using System.IO.Compression;
using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Checkpoints.Pth;

/// <summary>
/// Reads torch.save files (the zip container of PyTorch 1.6 and later): "&lt;root&gt;/data.pkl" through
/// the allow-list Unpickler, and "&lt;root&gt;/data/&lt;key&gt;" for each storage.
/// </summary>
internal static class PthReader
{
    private const long MaxPickleBytes = 512L << 20;

    /// <summary>True when the file starts like a zip archive.</summary>
    public static bool LooksLikeZip(ReadOnlySpan<byte> head) => head.Length >= 4 && head[0] == (byte)'P' && head[1] == (byte)'K' && head[2] == 3 && head[3] == 4;

    /// <summary>The unpickled object tree, with tensors still as PickleTensor (not yet read).</summary>
    public sealed class Archive : IDisposable
    {
        private readonly ZipArchive _zip;
        private readonly string _root;
        private readonly Dictionary<string, byte[]> _cache = new(StringComparer.Ordinal);

        internal Archive(string path, ZipArchive zip, string root, object? value)
        {
            Path = path;
            _zip = zip;
            _root = root;
            Value = value;
        }

        public string Path { get; }
        public object? Value { get; }

        /// <summary>Copies a pickled tensor out of its storage into a new contiguous CPU tensor.</summary>
        public unsafe torch.Tensor Materialize(PickleTensor t, string name)
        {
            var s = t.Storage;
            int esize = s.Dtype.ElementSize();
            long numel = 1;
            long extent = t.Offset; // the last element's storage index
            try
            {
                for (int d = 0; d < t.Size.Length; d++)
                {
                    if (t.Size[d] < 0 || t.Stride[d] < 0)
                        throw new CheckpointException(Path, $"tensor '{name}': negative size or stride");
                    numel = checked(numel * t.Size[d]);
                    if (t.Size[d] > 0) extent = checked(extent + (t.Size[d] - 1) * t.Stride[d]);
                }
            }
            catch (OverflowException) { throw new CheckpointException(Path, $"tensor '{name}': its size overflows"); }
            if (t.Offset < 0 || (numel > 0 && extent >= s.Numel))
                throw new CheckpointException(Path, $"tensor '{name}': the view (offset {t.Offset}, size [{string.Join(", ", t.Size)}], stride [{string.Join(", ", t.Stride)}]) reaches past its storage of {s.Numel} elements");
            var bytes = StorageBytes(s, name);
            var result = torch.empty(t.Size, s.Dtype).DetachFromDisposeScope();
            if (numel == 0) return result;
            var dst = new Span<byte>((void*)result.DataPtr(), checked((int)(numel * esize)));
            var src = bytes.AsSpan();
            if (IsRowMajor(t.Size, t.Stride))
            {
                src.Slice(checked((int)(t.Offset * esize)), dst.Length).CopyTo(dst);
            }
            else
            {
                // A strided view (transposed, sliced, expanded): walk the indices in row-major order.
                int rank = t.Size.Length;
                var index = new long[rank];
                long srcIndex = t.Offset;
                for (long i = 0; i < numel; i++)
                {
                    src.Slice((int)(srcIndex * esize), esize).CopyTo(dst.Slice((int)(i * esize), esize));
                    for (int d = rank - 1; d >= 0; d--)
                    {
                        if (++index[d] < t.Size[d]) { srcIndex += t.Stride[d]; break; }
                        srcIndex -= (t.Size[d] - 1) * t.Stride[d];
                        index[d] = 0;
                    }
                }
            }
            if (s.Dtype == ScalarType.Bool)
                foreach (var b in dst)
                    if (b > 1)
                    {
                        result.Dispose();
                        throw new CheckpointException(Path, $"tensor '{name}': bool value {b} is neither 0 nor 1");
                    }
            return result;
        }

        private static bool IsRowMajor(long[] size, long[] stride)
        {
            long expected = 1;
            for (int d = size.Length - 1; d >= 0; d--)
            {
                if (size[d] != 1 && stride[d] != expected) return false;
                expected *= size[d];
            }
            return true;
        }

        private byte[] StorageBytes(PickleStorage s, string name)
        {
            if (_cache.TryGetValue(s.Key, out var cached)) return cached;
            var entry = _zip.GetEntry($"{_root}/data/{s.Key}")
                ?? throw new CheckpointException(Path, $"tensor '{name}': storage '{s.Key}' is missing from the archive");
            long want = checked(s.Numel * s.Dtype.ElementSize());
            if (entry.Length != want)
                throw new CheckpointException(Path, $"tensor '{name}': storage '{s.Key}' holds {entry.Length} bytes, but {s.Numel} {s.Dtype} elements need {want}");
            if (want > Array.MaxLength) throw new CheckpointException(Path, $"storage '{s.Key}' ({want} bytes) is too large");
            var buf = new byte[want];
            try
            {
                using var st = entry.Open();
                st.ReadExactly(buf);
            }
            catch (Exception e) when (e is InvalidDataException or EndOfStreamException or IOException)
            {
                throw new CheckpointException(Path, $"storage '{s.Key}' cannot be read: {e.Message}", e);
            }
            _cache[s.Key] = buf;
            return buf;
        }

        public void Dispose() => _zip.Dispose();
    }

    /// <summary>Opens the archive and unpickles data.pkl. Refuses legacy (pre-1.6) files clearly.</summary>
    public static Archive Open(string path)
    {
        FileStream fs;
        try { fs = File.OpenRead(path); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { throw new CheckpointException(path, "file not found"); }
        catch (UnauthorizedAccessException e) { throw new CheckpointException(path, "permission denied", e); }
        try
        {
            Span<byte> head = stackalloc byte[4];
            int n = fs.Read(head);
            if (!LooksLikeZip(head[..n]))
            {
                if (n >= 2 && head[0] == 0x80)
                    throw new CheckpointException(path, "this is the legacy (pre-1.6) torch.save format, which is not supported; " +
                        "re-save it in Python with torch.save(torch.load(f), g) using PyTorch 1.6 or newer");
                throw new CheckpointException(path, "not a PyTorch zip checkpoint");
            }
            fs.Seek(0, SeekOrigin.Begin);
            ZipArchive zip;
            try { zip = new ZipArchive(fs, ZipArchiveMode.Read, leaveOpen: false); }
            catch (InvalidDataException e) { throw new CheckpointException(path, "the zip archive is truncated or corrupt: " + e.Message, e); }
            try
            {
                var pkl = zip.Entries.Where(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1).ToList();
                if (pkl.Count != 1)
                    throw new CheckpointException(path, pkl.Count == 0 ? "the archive has no <name>/data.pkl: not a torch.save file" : "the archive has several data.pkl entries");
                var root = pkl[0].FullName[..^"/data.pkl".Length];
                if (pkl[0].Length > MaxPickleBytes) throw new CheckpointException(path, $"data.pkl is {pkl[0].Length} bytes, over the {MaxPickleBytes}-byte limit");
                var data = new byte[pkl[0].Length];
                using (var s = pkl[0].Open()) s.ReadExactly(data);
                object? value;
                try { value = Unpickler.Load(data).Value; }
                catch (InvalidDataException e) { throw new CheckpointException(path, "data.pkl: " + e.Message, e); }
                return new Archive(path, zip, root, value);
            }
            catch (Exception e) when (e is InvalidDataException or EndOfStreamException or IOException)
            {
                zip.Dispose();
                throw new CheckpointException(path, "the zip archive is truncated or corrupt: " + e.Message, e);
            }
            catch
            {
                zip.Dispose();
                throw;
            }
        }
        catch
        {
            fs.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads the model weights from any of the three checkpoint shapes PyTorch users bring:
    /// the reference's {'state_dict', 'optimizer', 'epoch', 'best_pred'}, the other port's
    /// {'model_state', 'optimizer_state', 'cur_itrs', 'best_score'}, or a bare state_dict.
    /// DataParallel's "module." prefixes are stripped. The caller owns the returned tensors.
    /// </summary>
    public static Dictionary<string, torch.Tensor> LoadStateDict(string path, out CheckpointInfo info)
    {
        using var archive = Open(path);
        if (archive.Value is not PickleDict top)
            throw new CheckpointException(path, $"the file holds a {PickleTypes.Describe(archive.Value)}, not a dict of weights");
        PickleDict weights;
        if (top.TryGet("state_dict", out var sd) && sd is PickleDict d1)
        {
            weights = d1;
            info = new CheckpointInfo
            {
                Source = "pytorch-reference",
                Epoch = top.TryGet("epoch", out var e) && e is long ep ? (int)ep : 0,
                BestMIoU = top.TryGet("best_pred", out var b) ? AsDouble(b) : double.NaN,
            };
        }
        else if (top.TryGet("model_state", out var ms) && ms is PickleDict d2)
        {
            weights = d2;
            info = new CheckpointInfo
            {
                Source = "pytorch-port",
                Iteration = top.TryGet("cur_itrs", out var it) && it is long itl ? itl : 0,
                BestMIoU = top.TryGet("best_score", out var b) ? AsDouble(b) : double.NaN,
            };
        }
        else if (top.Count > 0 && top.Items.All(kv => kv.Key is string && kv.Value is PickleTensor))
        {
            weights = top;
            info = new CheckpointInfo { Source = "pytorch-state-dict" };
        }
        else
        {
            var keys = string.Join(", ", top.Items.Take(10).Select(kv => $"'{kv.Key}'"));
            throw new CheckpointException(path, $"unrecognised checkpoint layout (top-level keys {keys}): expected 'state_dict', 'model_state' or a bare state_dict of tensors");
        }

        var result = new Dictionary<string, torch.Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var (k, v) in weights.Items)
            {
                if (k is not string key) throw new CheckpointException(path, $"state_dict key {PickleTypes.Describe(k)} is not a string");
                if (v is not PickleTensor pt) throw new CheckpointException(path, $"state_dict entry '{key}' is a {PickleTypes.Describe(v)}, not a tensor");
                var name = key.StartsWith("module.", StringComparison.Ordinal) ? key["module.".Length..] : key;
                if (result.ContainsKey(name)) throw new CheckpointException(path, $"state_dict has '{name}' twice (with and without 'module.')");
                result[name] = archive.Materialize(pt, key);
            }
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        return result;
    }

    private static double AsDouble(object? v) => v switch
    {
        double d => d,
        long l => l,
        PickleTensor => double.NaN, // a 0-d tensor score: not worth reading for metadata
        _ => double.NaN,
    };
}
