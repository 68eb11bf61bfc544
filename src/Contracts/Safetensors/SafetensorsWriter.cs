using System.Text;
using System.Text.Json;

namespace Serving.Contracts.Safetensors;

/// <summary>Writes a standard safetensors file (header padded with spaces to an 8-byte boundary, as the reference writer does).</summary>
public static class SafetensorsWriter
{
    /// <summary>
    /// A tensor to write: <paramref name="Data"/> produces its raw little-endian bytes in row-major order. It is called
    /// once, when the tensor is written, so a large file is produced holding one tensor in memory at a time.
    /// </summary>
    public sealed record Entry(string Name, SafetensorsDtype Dtype, long[] Shape, Func<byte[]> Data)
    {
        public static Entry Of(string name, SafetensorsDtype dtype, long[] shape, byte[] data) => new(name, dtype, shape, () => data);

        public long ByteLength => Shape.Aggregate(1L, (a, b) => a * b) * SafetensorsDtypes.ElementSize(Dtype);
    }

    public static void Write(string path, IReadOnlyList<Entry> entries, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata)
                    json.WriteString(k, v);
                json.WriteEndObject();
            }

            long offset = 0;
            foreach (var e in entries)
            {
                json.WriteStartObject(e.Name);
                json.WriteString("dtype", SafetensorsDtypes.Name(e.Dtype));
                json.WriteStartArray("shape");
                foreach (long d in e.Shape)
                    json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + e.ByteLength);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += e.ByteLength;
            }

            json.WriteEndObject();
        }

        var header = buffer.ToArray();
        int padded = (header.Length + 7) / 8 * 8;
        string tmp = path + ".tmp";
        using (var file = new FileStream(tmp, FileMode.Create, FileAccess.Write))
        {
            file.Write(BitConverter.GetBytes((long)padded));
            file.Write(header);
            file.Write(Encoding.ASCII.GetBytes(new string(' ', padded - header.Length)));
            foreach (var e in entries)
            {
                var data = e.Data();
                if (data.Length != e.ByteLength)
                    throw new ArgumentException($"tensor '{e.Name}' produced {data.Length} bytes, its dtype and shape need {e.ByteLength}");
                file.Write(data);
            }
        }

        File.Move(tmp, path, overwrite: true);
    }
}
