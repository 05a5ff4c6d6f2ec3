using System.Buffers.Binary;
using System.Text;
using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Checkpoints.Pth;

/// <summary>
/// A pickle reader that builds plain data and never runs code: it knows the opcodes torch.save
/// emits (protocols 2 to 4) and a short allow-list of globals, whose calls it interprets itself
/// (OrderedDict, tensor and parameter rebuilding, storage types, numpy scalars). Any other global
/// is refused by name, like PyTorch's weights_only=True.
/// </summary>
internal sealed class Unpickler
{
    private const int MaxStack = 10_000_000;
    private const int MaxMemo = 10_000_000;

    private static readonly Dictionary<string, ScalarType> StorageTypes = new()
    {
        ["FloatStorage"] = ScalarType.Float32, ["DoubleStorage"] = ScalarType.Float64, ["HalfStorage"] = ScalarType.Float16,
        ["BFloat16Storage"] = ScalarType.BFloat16, ["LongStorage"] = ScalarType.Int64, ["IntStorage"] = ScalarType.Int32,
        ["ShortStorage"] = ScalarType.Int16, ["CharStorage"] = ScalarType.Int8, ["ByteStorage"] = ScalarType.Byte,
        ["BoolStorage"] = ScalarType.Bool,
    };

    private static readonly HashSet<string> AllowedFunctions = new()
    {
        "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor", "torch._utils._rebuild_parameter",
        "torch.device", "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype", "_codecs.encode",
        "builtins.set", "__builtin__.set",
    };

    private readonly byte[] _data;
    private int _pos;
    private readonly List<object?> _stack = new();
    private readonly Stack<int> _marks = new();
    private readonly Dictionary<long, object?> _memo = new();
    private readonly Dictionary<string, PickleStorage> _storages = new(StringComparer.Ordinal);

    private Unpickler(byte[] data) { _data = data; }

    /// <summary>Every storage the pickle referenced, by key.</summary>
    public IReadOnlyDictionary<string, PickleStorage> Storages => _storages;

    /// <summary>Parses one pickle. Throws InvalidDataException with the reason on anything unexpected.</summary>
    public static (object? Value, IReadOnlyDictionary<string, PickleStorage> Storages) Load(byte[] data)
    {
        var u = new Unpickler(data);
        var v = u.Run();
        return (v, u._storages);
    }

    private object? Run()
    {
        while (true)
        {
            if (_pos >= _data.Length) throw Bad("the pickle ended without a STOP opcode");
            int opPos = _pos;
            byte op = _data[_pos++];
            switch (op)
            {
                case 0x80: { byte proto = ReadByte(); if (proto > 5) throw Bad($"unsupported pickle protocol {proto}"); break; } // PROTO
                case 0x95: Take(8); break; // FRAME: only a length hint
                case (byte)'.': // STOP
                    if (_stack.Count != 1) throw Bad($"STOP with {_stack.Count} values on the stack");
                    return _stack[0];
                case (byte)'}': Push(new PickleDict()); break; // EMPTY_DICT
                case (byte)']': Push(new List<object?>()); break; // EMPTY_LIST
                case (byte)')': Push(new PickleTuple(Array.Empty<object?>())); break; // EMPTY_TUPLE
                case (byte)'(': _marks.Push(_stack.Count); break; // MARK
                case (byte)'N': Push(null); break;
                case 0x88: Push(true); break;
                case 0x89: Push(false); break;
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4))); break; // BININT
                case (byte)'K': Push((long)ReadByte()); break; // BININT1
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2))); break; // BININT2
                case 0x8a: Push(ReadLong(ReadByte())); break; // LONG1
                case 0x8b: Push(ReadLong(ReadLength(4))); break; // LONG4
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Take(8))); break; // BINFLOAT
                case (byte)'X': Push(Utf8(Take(ReadLength(4)))); break; // BINUNICODE
                case 0x8c: Push(Utf8(Take(ReadByte()))); break; // SHORT_BINUNICODE
                case 0x8d: Push(Utf8(Take(ReadLength(8)))); break; // BINUNICODE8
                case (byte)'T': Push(Encoding.Latin1.GetString(Take(ReadLength(4)))); break; // BINSTRING (Python 2 str)
                case (byte)'U': Push(Encoding.Latin1.GetString(Take(ReadByte()))); break; // SHORT_BINSTRING
                case (byte)'B': Push(Take(ReadLength(4)).ToArray()); break; // BINBYTES
                case (byte)'C': Push(Take(ReadByte()).ToArray()); break; // SHORT_BINBYTES
                case 0x8e: Push(Take(ReadLength(8)).ToArray()); break; // BINBYTES8
                case (byte)'t': Push(new PickleTuple(PopMark().ToArray())); break; // TUPLE
                case 0x85: Push(new PickleTuple(new[] { Pop() })); break; // TUPLE1
                case 0x86: { var b = Pop(); var a = Pop(); Push(new PickleTuple(new[] { a, b })); break; } // TUPLE2
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new PickleTuple(new[] { a, b, c })); break; } // TUPLE3
                case (byte)'l': Push(PopMark()); break; // LIST
                case (byte)'d': // DICT
                {
                    var items = PopMark();
                    if (items.Count % 2 != 0) throw Bad("DICT with an odd number of items");
                    var d = new PickleDict();
                    for (int i = 0; i < items.Count; i += 2) d.Set(items[i], items[i + 1]);
                    Push(d);
                    break;
                }
                case (byte)'a': { var v = Pop(); AsList(Peek(), "APPEND").Add(v); break; } // APPEND
                case (byte)'e': { var items = PopMark(); AsList(Peek(), "APPENDS").AddRange(items); break; } // APPENDS
                case (byte)'s': { var v = Pop(); var k = Pop(); AsDict(Peek(), "SETITEM").Set(k, v); break; } // SETITEM
                case (byte)'u': // SETITEMS
                {
                    var items = PopMark();
                    if (items.Count % 2 != 0) throw Bad("SETITEMS with an odd number of items");
                    var d = AsDict(Peek(), "SETITEMS");
                    for (int i = 0; i < items.Count; i += 2) d.Set(items[i], items[i + 1]);
                    break;
                }
                case (byte)'q': Memo(ReadByte()); break; // BINPUT
                case (byte)'r': Memo(ReadLength(4)); break; // LONG_BINPUT
                case 0x94: Memo(_memo.Count); break; // MEMOIZE
                case (byte)'h': Push(Recall(ReadByte())); break; // BINGET
                case (byte)'j': Push(Recall(ReadLength(4))); break; // LONG_BINGET
                case (byte)'c': // GLOBAL module\nname\n
                {
                    var module = ReadLine();
                    var name = ReadLine();
                    Push(Global(module, name));
                    break;
                }
                case 0x93: // STACK_GLOBAL
                {
                    var name = Pop() as string ?? throw Bad("STACK_GLOBAL name is not a string");
                    var module = Pop() as string ?? throw Bad("STACK_GLOBAL module is not a string");
                    Push(Global(module, name));
                    break;
                }
                case (byte)'R': // REDUCE
                {
                    var args = Pop() as PickleTuple ?? throw Bad("REDUCE arguments are not a tuple");
                    var f = Pop() as PickleGlobal ?? throw Bad("REDUCE of something that is not an allowed global");
                    Push(Call(f, args));
                    break;
                }
                case (byte)'Q': Push(PersistentLoad(Pop())); break; // BINPERSID
                case (byte)'b': // BUILD
                {
                    var state = Pop();
                    var target = Peek();
                    // OrderedDict carries state_dict's _metadata (per-module versions); tensors may carry
                    // an empty state; numpy dtypes their byte order. None of it changes the values we read.
                    if (target is not (PickleDict or PickleTensor or NumpyDtype))
                        throw Bad($"BUILD on a {PickleTypes.Describe(target)} is not allowed");
                    _ = state;
                    break;
                }
                case 0x81: case 0x92: throw Bad("NEWOBJ (creating class instances) is not allowed in a weights file");
                case (byte)'i': case (byte)'o': throw Bad("INST/OBJ (creating class instances) is not allowed in a weights file");
                default: throw Bad($"opcode 0x{op:x2} at byte {opPos} is not allowed in a weights file");
            }
        }
    }

    private object Global(string module, string name)
    {
        var full = module + "." + name;
        if (module == "torch" && StorageTypes.ContainsKey(name)) return new PickleGlobal(module, name);
        if (AllowedFunctions.Contains(full)) return new PickleGlobal(module, name);
        throw Bad($"refused global '{full}': a weights file may only hold tensors, storages, OrderedDict and plain containers");
    }

    private object? Call(PickleGlobal f, PickleTuple args)
    {
        switch (f.ToString())
        {
            case "collections.OrderedDict":
            {
                var d = new PickleDict();
                if (args.Count == 1 && args[0] is List<object?> pairs)
                    foreach (var p in pairs)
                    {
                        if (p is not PickleTuple { Count: 2 } kv) throw Bad("OrderedDict item is not a pair");
                        d.Set(kv[0], kv[1]);
                    }
                else if (args.Count != 0) throw Bad("OrderedDict called with unexpected arguments");
                return d;
            }
            case "torch._utils._rebuild_tensor_v2":
            case "torch._utils._rebuild_tensor":
            {
                if (args.Count < 4) throw Bad($"{f} needs at least 4 arguments, got {args.Count}");
                var storage = args[0] as PickleStorage ?? throw Bad($"{f}: the first argument is a {PickleTypes.Describe(args[0])}, not a storage");
                long offset = AsLong(args[1], "storage offset");
                var size = AsLongs(args[2], "size");
                var stride = AsLongs(args[3], "stride");
                bool rg = args.Count > 4 && args[4] is true;
                if (size.Length != stride.Length) throw Bad($"tensor size has {size.Length} dims but stride {stride.Length}");
                return new PickleTensor(storage, offset, size, stride, rg);
            }
            case "torch._utils._rebuild_parameter":
            {
                if (args.Count < 2 || args[0] is not PickleTensor t) throw Bad("_rebuild_parameter needs a tensor");
                return t with { RequiresGrad = args[1] is true };
            }
            case "torch.device":
                return args.Count >= 1 && args[0] is string s ? s : throw Bad("torch.device needs a string");
            case "numpy.dtype":
                return args.Count >= 1 && args[0] is string code ? new NumpyDtype(code) : throw Bad("numpy.dtype needs a string code");
            case "numpy.core.multiarray.scalar":
            case "numpy._core.multiarray.scalar":
                return NumpyScalar(args);
            case "_codecs.encode":
                if (args.Count == 2 && args[0] is string text && args[1] is string enc && enc is "latin1" or "latin-1")
                    return Encoding.Latin1.GetBytes(text);
                throw Bad("_codecs.encode is only allowed as (str, 'latin1')");
            case "builtins.set":
            case "__builtin__.set":
                return args.Count == 0 ? new List<object?>() : args[0] as List<object?> ?? throw Bad("set() needs a list");
            default:
                throw Bad($"{f} cannot be called");
        }
    }

    private object NumpyScalar(PickleTuple args)
    {
        if (args.Count != 2 || args[0] is not NumpyDtype dt || args[1] is not byte[] b) throw Bad("numpy scalar needs (dtype, bytes)");
        return (dt.Code, b.Length) switch
        {
            ("f8", 8) => BinaryPrimitives.ReadDoubleLittleEndian(b),
            ("f4", 4) => (double)BinaryPrimitives.ReadSingleLittleEndian(b),
            ("i8", 8) => BinaryPrimitives.ReadInt64LittleEndian(b),
            ("i4", 4) => (long)BinaryPrimitives.ReadInt32LittleEndian(b),
            ("b1", 1) => b[0] != 0,
            _ => throw Bad($"numpy scalar of dtype '{dt.Code}' is not supported"),
        };
    }

    private PickleStorage PersistentLoad(object? pid)
    {
        if (pid is not PickleTuple { Count: 5 } t || t[0] is not "storage")
            throw Bad($"persistent id {PickleTypes.Describe(pid)} is not a ('storage', type, key, location, numel) tuple");
        if (t[1] is not PickleGlobal g || g.Module != "torch" || !StorageTypes.TryGetValue(g.Name, out var dtype))
            throw Bad($"persistent id names storage type {PickleTypes.Describe(t[1])}");
        if (t[2] is not string key || key.Length == 0 || key.Contains('/') || key.Contains('\\') || key.Contains(".."))
            throw Bad("storage key is not a plain name");
        var location = t[3] as string ?? throw Bad("storage location is not a string");
        long numel = AsLong(t[4], "storage size");
        if (numel < 0) throw Bad($"storage '{key}' has negative size {numel}");
        var s = new PickleStorage(key, dtype, location, numel);
        if (_storages.TryGetValue(key, out var old))
        {
            if (old.Dtype != dtype || old.Numel != numel) throw Bad($"storage '{key}' is described twice, differently");
            return old;
        }
        _storages[key] = s;
        return s;
    }

    // ------------------------------------------------------------------ helpers
    private InvalidDataException Bad(string reason) => new(reason);

    private byte ReadByte()
    {
        if (_pos >= _data.Length) throw Bad("the pickle is truncated");
        return _data[_pos++];
    }

    private ReadOnlySpan<byte> Take(long n)
    {
        if (n < 0 || n > _data.Length - _pos) throw Bad($"the pickle is truncated (needs {n} more bytes at {_pos})");
        var s = _data.AsSpan(_pos, (int)n);
        _pos += (int)n;
        return s;
    }

    private long ReadLength(int bytes)
    {
        var s = Take(bytes);
        ulong v = bytes == 4 ? BinaryPrimitives.ReadUInt32LittleEndian(s) : BinaryPrimitives.ReadUInt64LittleEndian(s);
        if (v > (ulong)(_data.Length - _pos) && v > int.MaxValue) throw Bad($"length {v} runs past the pickle");
        return (long)v;
    }

    private long ReadLong(long n)
    {
        if (n == 0) return 0;
        if (n > 8) throw Bad($"integer of {n} bytes is too large");
        var s = Take(n);
        long v = 0;
        for (int i = (int)n - 1; i >= 0; i--) v = (v << 8) | s[i];
        if (n < 8 && (s[(int)n - 1] & 0x80) != 0) v -= 1L << (int)(8 * n); // sign-extend
        return v;
    }

    private string ReadLine()
    {
        int start = _pos;
        while (_pos < _data.Length && _data[_pos] != (byte)'\n')
            if (_pos++ - start > 256) throw Bad("GLOBAL name is too long");
        if (_pos >= _data.Length) throw Bad("the pickle is truncated inside GLOBAL");
        var s = Encoding.ASCII.GetString(_data, start, _pos - start);
        _pos++;
        return s;
    }

    private static string Utf8(ReadOnlySpan<byte> b)
    {
        try { return new UTF8Encoding(false, true).GetString(b); }
        catch (DecoderFallbackException) { throw new InvalidDataException("a string in the pickle is not valid UTF-8"); }
    }

    private void Push(object? v)
    {
        if (_stack.Count >= MaxStack) throw Bad("the pickle's stack grew too large");
        _stack.Add(v);
    }

    private object? Pop()
    {
        if (_stack.Count == 0 || (_marks.Count > 0 && _stack.Count <= _marks.Peek())) throw Bad("stack underflow");
        var v = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return v;
    }

    private object? Peek()
    {
        if (_stack.Count == 0) throw Bad("stack underflow");
        return _stack[^1];
    }

    private List<object?> PopMark()
    {
        if (_marks.Count == 0) throw Bad("MARK expected");
        int m = _marks.Pop();
        if (m > _stack.Count) throw Bad("MARK below the stack");
        var items = _stack.GetRange(m, _stack.Count - m);
        _stack.RemoveRange(m, _stack.Count - m);
        return items;
    }

    private void Memo(long index)
    {
        if (_memo.Count >= MaxMemo && !_memo.ContainsKey(index)) throw Bad("the pickle's memo grew too large");
        _memo[index] = Peek();
    }

    private object? Recall(long index) =>
        _memo.TryGetValue(index, out var v) ? v : throw Bad($"memo entry {index} is used before it is set");

    private List<object?> AsList(object? v, string op) => v as List<object?> ?? throw Bad($"{op} on a {PickleTypes.Describe(v)}");
    private PickleDict AsDict(object? v, string op) => v as PickleDict ?? throw Bad($"{op} on a {PickleTypes.Describe(v)}");

    private long AsLong(object? v, string what) => v is long l ? l : throw Bad($"{what} is a {PickleTypes.Describe(v)}, not an int");

    private long[] AsLongs(object? v, string what)
    {
        if (v is not PickleTuple t) throw Bad($"{what} is a {PickleTypes.Describe(v)}, not a tuple");
        var r = new long[t.Count];
        for (int i = 0; i < r.Length; i++) r[i] = AsLong(t[i], what);
        return r;
    }
}
