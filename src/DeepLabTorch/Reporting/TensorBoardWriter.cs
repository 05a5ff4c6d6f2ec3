using System.Buffers.Binary;
using Google.Protobuf;

namespace DeepLabTorch.Reporting;

/// <summary>
/// Writes TensorBoard event files directly: TFRecord framing (length, masked CRC-32C of the length,
/// payload, masked CRC-32C of the payload) around tensorflow.Event protobuf messages that we encode
/// field by field. Supports scalars (Summary.Value.simple_value) and PNG images (Summary.Image).
/// </summary>
public sealed class TensorBoardWriter : IDisposable
{
    // Field numbers from tensorflow/core/util/event.proto and summary.proto.
    private const int EventWallTime = 1, EventStep = 2, EventFileVersion = 3, EventSummary = 5;
    private const int SummaryValue = 1;
    private const int ValueTag = 1, ValueSimpleValue = 2, ValueImage = 4;
    private const int ImageHeight = 1, ImageWidth = 2, ImageColorspace = 3, ImageEncoded = 4;

    private readonly FileStream _file;
    private readonly object _lock = new();

    public TensorBoardWriter(string logDir)
    {
        Directory.CreateDirectory(logDir);
        var host = System.Net.Dns.GetHostName();
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var path = Path.Combine(logDir, $"events.out.tfevents.{now:D10}.{host}.{Environment.ProcessId}");
        for (var n = 1; File.Exists(path); n++) path = Path.Combine(logDir, $"events.out.tfevents.{now:D10}.{host}.{Environment.ProcessId}.{n}");
        FilePath = path;
        _file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
        WriteEvent(o =>
        {
            o.WriteTag(EventFileVersion, WireFormat.WireType.LengthDelimited);
            o.WriteString("brain.Event:2");
        }, 0);
        Flush();
    }

    public string FilePath { get; }

    public void AddScalar(string tag, double value, long step) => WriteSummary(step, v =>
    {
        v.WriteTag(ValueTag, WireFormat.WireType.LengthDelimited);
        v.WriteString(tag);
        v.WriteTag(ValueSimpleValue, WireFormat.WireType.Fixed32);
        v.WriteFloat((float)value);
    });

    /// <summary>An image already encoded as PNG (RGB: colorspace 3).</summary>
    public void AddImage(string tag, byte[] png, int height, int width, long step) => WriteSummary(step, v =>
    {
        v.WriteTag(ValueTag, WireFormat.WireType.LengthDelimited);
        v.WriteString(tag);
        var image = Encode(o =>
        {
            o.WriteTag(ImageHeight, WireFormat.WireType.Varint);
            o.WriteInt32(height);
            o.WriteTag(ImageWidth, WireFormat.WireType.Varint);
            o.WriteInt32(width);
            o.WriteTag(ImageColorspace, WireFormat.WireType.Varint);
            o.WriteInt32(3);
            o.WriteTag(ImageEncoded, WireFormat.WireType.LengthDelimited);
            o.WriteBytes(ByteString.CopyFrom(png));
        });
        v.WriteTag(ValueImage, WireFormat.WireType.LengthDelimited);
        v.WriteBytes(ByteString.CopyFrom(image));
    });

    private void WriteSummary(long step, Action<CodedOutputStream> value)
    {
        var valueBytes = Encode(value);
        var summary = Encode(s =>
        {
            s.WriteTag(SummaryValue, WireFormat.WireType.LengthDelimited);
            s.WriteBytes(ByteString.CopyFrom(valueBytes));
        });
        WriteEvent(o =>
        {
            o.WriteTag(EventSummary, WireFormat.WireType.LengthDelimited);
            o.WriteBytes(ByteString.CopyFrom(summary));
        }, step);
    }

    private void WriteEvent(Action<CodedOutputStream> body, long step)
    {
        var wall = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        var payload = Encode(o =>
        {
            o.WriteTag(EventWallTime, WireFormat.WireType.Fixed64);
            o.WriteDouble(wall);
            if (step != 0)
            {
                o.WriteTag(EventStep, WireFormat.WireType.Varint);
                o.WriteInt64(step);
            }
            body(o);
        });
        var header = new byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)payload.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), Crc32C.Masked(header.AsSpan(0, 8)));
        var footer = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(footer, Crc32C.Masked(payload));
        lock (_lock)
        {
            _file.Write(header);
            _file.Write(payload);
            _file.Write(footer);
        }
    }

    private static byte[] Encode(Action<CodedOutputStream> write)
    {
        using var ms = new MemoryStream();
        using (var o = new CodedOutputStream(ms, leaveOpen: true))
        {
            write(o);
            o.Flush();
        }
        return ms.ToArray();
    }

    public void Flush()
    {
        lock (_lock) _file.Flush(flushToDisk: false);
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _file.Flush();
            _file.Dispose();
        }
    }
}
