using DeepLabTorch.Extensions;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Checkpoints.Pth;

/// <summary>A class or function named by GLOBAL that passed the allow-list.</summary>
internal sealed record PickleGlobal(string Module, string Name)
{
    public override string ToString() => $"{Module}.{Name}";
}

/// <summary>A Python tuple.</summary>
internal sealed class PickleTuple
{
    public PickleTuple(object?[] items) { Items = items; }
    public object?[] Items { get; }
    public int Count => Items.Length;
    public object? this[int i] => Items[i];
}

/// <summary>A Python dict (or OrderedDict) keeping insertion order.</summary>
internal sealed class PickleDict
{
    private readonly List<KeyValuePair<object, object?>> _items = new();
    private readonly Dictionary<object, int> _index = new();

    public int Count => _items.Count;
    public IEnumerable<KeyValuePair<object, object?>> Items => _items;

    public void Set(object? key, object? value)
    {
        if (key is null) throw new InvalidDataException("dict key None is not supported");
        if (key is PickleDict or List<object?> or byte[]) throw new InvalidDataException($"unhashable dict key of type {PickleTypes.Describe(key)}");
        if (_index.TryGetValue(key, out var i)) _items[i] = new(key, value);
        else
        {
            _index[key] = _items.Count;
            _items.Add(new(key, value));
        }
    }

    public bool TryGet(object key, out object? value)
    {
        if (_index.TryGetValue(key, out var i)) { value = _items[i].Value; return true; }
        value = null;
        return false;
    }

    public bool ContainsKey(object key) => _index.ContainsKey(key);
}

/// <summary>A storage named by a persistent id: ('storage', FloatStorage, key, location, numel).</summary>
internal sealed record PickleStorage(string Key, ScalarType Dtype, string Location, long Numel);

/// <summary>A tensor as torch._utils._rebuild_tensor_v2 describes it: a strided view of a storage.</summary>
internal sealed record PickleTensor(PickleStorage Storage, long Offset, long[] Size, long[] Stride, bool RequiresGrad);

/// <summary>A numpy dtype, kept only to decode numpy scalars (e.g. a best score saved as np.float64).</summary>
internal sealed record NumpyDtype(string Code);

internal static class PickleTypes
{
    public static string Describe(object? v) => v switch
    {
        null => "None",
        string => "str",
        long => "int",
        double => "float",
        bool => "bool",
        byte[] => "bytes",
        PickleTuple => "tuple",
        PickleDict => "dict",
        List<object?> => "list",
        PickleTensor => "tensor",
        PickleStorage => "storage",
        PickleGlobal g => g.ToString(),
        _ => v.GetType().Name,
    };
}
