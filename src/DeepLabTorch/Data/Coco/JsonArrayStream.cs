using System.Text.Json;

namespace DeepLabTorch.Data;

/// <summary>
/// Reads a JSON document of the shape <c>{"name": [ {…}, {…} ], …}</c> from a stream in chunks and hands over each
/// element of the chosen top-level arrays as its own complete JSON bytes. Memory stays at the largest element,
/// not the file: a COCO train annotation file is about 450 MB.
/// </summary>
internal static class JsonArrayStream
{
    public delegate void ElementHandler(string array, ReadOnlySpan<byte> element);

    /// <exception cref="JsonException">Malformed or truncated JSON, or a top level that is not an object.</exception>
    public static void Read(Stream stream, IReadOnlySet<string> arrays, ElementHandler onElement, int initialBuffer = 1 << 20)
    {
        var buffer = new byte[Math.Max(16, initialBuffer)];
        int filled = 0;
        bool final = false;
        var cursor = new Cursor();
        while (true)
        {
            while (!final && filled < buffer.Length)
            {
                int n = stream.Read(buffer, filled, buffer.Length - filled);
                if (n == 0) final = true;
                filled += n;
            }
            int consumed = Scan(buffer.AsSpan(0, filled), final, cursor, arrays, onElement);
            if (final)
            {
                if (!cursor.Ended) throw new JsonException("the JSON ends before its top-level object is closed");
                return;
            }
            if (consumed == 0 && filled == buffer.Length)
            {
                // One element is larger than the buffer: grow it, keeping what is there.
                Array.Resize(ref buffer, buffer.Length * 2);
                continue;
            }
            Buffer.BlockCopy(buffer, consumed, buffer, 0, filled - consumed);
            filled -= consumed;
        }
    }

    /// <summary>Where the scan stands between chunks.</summary>
    private sealed class Cursor
    {
        public JsonReaderState State = new(new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip });
        public string Property = "";
        public bool InArray;
        public bool Started;
        public bool Ended;
    }

    /// <returns>The bytes of <paramref name="data"/> fully handled; the rest is read again with more data after it.</returns>
    private static int Scan(ReadOnlySpan<byte> data, bool final, Cursor cursor, IReadOnlySet<string> arrays, ElementHandler onElement)
    {
        var reader = new Utf8JsonReader(data, final, cursor.State);
        while (true)
        {
            var before = reader.CurrentState;
            long beforeConsumed = reader.BytesConsumed;
            if (!reader.Read()) break;
            int depth = reader.CurrentDepth;
            var token = reader.TokenType;
            if (depth == 0)
            {
                if (token == JsonTokenType.StartObject && !cursor.Started) cursor.Started = true;
                else if (token == JsonTokenType.EndObject) cursor.Ended = true;
                else throw new JsonException($"the top level must be one object, found {token}");
            }
            else if (depth == 1 && token == JsonTokenType.PropertyName)
            {
                cursor.Property = reader.GetString() ?? "";
            }
            else if (depth == 1)
            {
                cursor.InArray = token == JsonTokenType.StartArray;
            }
            else if (depth == 2 && cursor.InArray && token is JsonTokenType.StartObject or JsonTokenType.StartArray)
            {
                // A whole element, or nothing of it: rewind to before it when it runs past this chunk.
                var probe = reader;
                if (!probe.TrySkip())
                {
                    cursor.State = before;
                    return (int)beforeConsumed;
                }
                if (arrays.Contains(cursor.Property))
                {
                    int start = (int)reader.TokenStartIndex;
                    onElement(cursor.Property, data[start..(int)probe.BytesConsumed]);
                }
                reader = probe;
            }
        }
        cursor.State = reader.CurrentState;
        return (int)reader.BytesConsumed;
    }
}
