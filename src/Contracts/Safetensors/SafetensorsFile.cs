using System.Text.Json;

namespace Serving.Contracts.Safetensors;

/// <summary>
/// The parsed and validated header of one safetensors file. Layout: 8-byte little-endian header length N,
/// N bytes of JSON (<c>{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}</c>),
/// then the data buffer, offsets relative to its start. Validation is strict: the header must fit in the file,
/// every tensor's byte range must match its dtype and shape, lie inside the file and not overlap another.
/// </summary>
public sealed class SafetensorsFile
{
    /// <summary>Refuse headers above this size: real checkpoints stay far below it.</summary>
    public const long MaxHeaderBytes = 100L * 1024 * 1024;

    private SafetensorsFile(string path, long fileLength, IReadOnlyDictionary<string, SafetensorsTensorInfo> tensors,
        IReadOnlyDictionary<string, string> metadata)
    {
        Path = path;
        FileLength = fileLength;
        Tensors = tensors;
        Metadata = metadata;
    }

    public string Path { get; }
    public long FileLength { get; }
    public IReadOnlyDictionary<string, SafetensorsTensorInfo> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    public static SafetensorsFile Open(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
        return Read(path, stream);
    }

    /// <summary>Parses and validates the header of safetensors content held in memory (tensor bytes are then sliced from it).</summary>
    public static SafetensorsFile Parse(string path, byte[] content) => Parse(path, (ReadOnlySpan<byte>)content);

    /// <inheritdoc cref="Parse(string, byte[])"/>
    public static SafetensorsFile Parse(string path, ReadOnlySpan<byte> content)
    {
        long length = content.Length;
        long headerLength = length < 8 ? 0 : BitConverter.ToInt64(content[..8]);
        CheckHeaderLength(path, length, headerLength);
        return Parse(path, length, content.Slice(8, (int)headerLength).ToArray());
    }

    /// <summary>Parses and validates the header of safetensors content in <paramref name="stream"/> (seekable; its length is the file's).</summary>
    public static SafetensorsFile Read(string path, Stream stream)
    {
        long length = stream.Length;
        Span<byte> prefix = stackalloc byte[8];
        long headerLength = 0;
        if (length >= 8)
        {
            stream.Position = 0;
            stream.ReadExactly(prefix);
            headerLength = BitConverter.ToInt64(prefix);
        }

        CheckHeaderLength(path, length, headerLength);
        var header = new byte[headerLength];
        stream.ReadExactly(header);
        return Parse(path, length, header);
    }

    private static void CheckHeaderLength(string path, long length, long headerLength)
    {
        if (length < 8)
            throw Fail(path, $"file is {length} bytes, shorter than the 8-byte header length prefix (truncated?)");
        if (headerLength <= 0 || headerLength > MaxHeaderBytes)
            throw Fail(path, $"the 8-byte header length is not in (0, {MaxHeaderBytes}] (not a safetensors file?)");
        if (8 + headerLength > length)
            throw Fail(path, $"the header length runs past the end of the {length}-byte file (truncated, or not a safetensors file)");
    }

    private static SafetensorsFile Parse(string path, long fileLength, byte[] header)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header);
        }
        catch (JsonException ex)
        {
            throw Fail(path, $"header is not valid JSON (byte {(ex.BytePositionInLine ?? 0) + 1} of line {(ex.LineNumber ?? 0) + 1})");
        }

        using (doc)
        {
            try
            {
                return ParseEntries(path, fileLength, header.Length, doc.RootElement);
            }
            catch (InvalidOperationException)
            {
                // System.Text.Json validates UTF-8 lazily: a bad name or string surfaces only when it is read.
                throw Fail(path, "header is not valid UTF-8 JSON");
            }
        }
    }

    private static SafetensorsFile ParseEntries(string path, long fileLength, int headerLength, JsonElement root)
    {
        {
            if (root.ValueKind != JsonValueKind.Object)
                throw Fail(path, "header JSON is not an object");
            long dataStart = 8 + headerLength;
            long dataLength = fileLength - dataStart;
            var tensors = new Dictionary<string, SafetensorsTensorInfo>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var property in root.EnumerateObject())
            {
                if (property.Name == "__metadata__")
                {
                    if (property.Value.ValueKind == JsonValueKind.Object)
                        foreach (var m in property.Value.EnumerateObject())
                            metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                    continue;
                }

                tensors[property.Name] = ParseTensor(path, property.Name, property.Value, dataStart, dataLength);
            }

            CheckNoOverlap(path, tensors.Values);
            return new SafetensorsFile(path, fileLength, tensors, metadata);
        }
    }

    private static SafetensorsTensorInfo ParseTensor(string path, string name, JsonElement entry, long dataStart, long dataLength)
    {
        if (entry.ValueKind != JsonValueKind.Object)
            throw Fail(path, $"tensor '{name}': entry is not an object");
        if (!entry.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw Fail(path, $"tensor '{name}': missing dtype");
        if (!SafetensorsDtypes.TryParse(dtypeElement.GetString()!, out var dtype))
            throw Fail(path, $"tensor '{name}': unsupported dtype '{dtypeElement.GetString()}' (expected F32, F16, BF16, I32 or I64)");
        if (!entry.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw Fail(path, $"tensor '{name}': missing shape");
        var shape = new long[shapeElement.GetArrayLength()];
        int i = 0;
        foreach (var d in shapeElement.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim) || dim < 0)
                throw Fail(path, $"tensor '{name}': shape has a non-integer or negative dimension");
            shape[i++] = dim;
        }

        if (!entry.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2
            || offsets[0].ValueKind != JsonValueKind.Number || offsets[1].ValueKind != JsonValueKind.Number
            || !offsets[0].TryGetInt64(out long begin) || !offsets[1].TryGetInt64(out long end))
            throw Fail(path, $"tensor '{name}': data_offsets must be two integers");
        if (begin < 0 || end < begin || end > dataLength)
            throw Fail(path, $"tensor '{name}': data_offsets [{begin}, {end}] lie outside the {dataLength}-byte data section (truncated file or lying header)");
        long expected;
        try
        {
            long elements = 1;
            foreach (long dim in shape)
                elements = checked(elements * dim);
            expected = checked(elements * SafetensorsDtypes.ElementSize(dtype));
        }
        catch (OverflowException)
        {
            throw Fail(path, $"tensor '{name}': shape [{string.Join(", ", shape)}] overflows 64-bit sizes");
        }

        if (end - begin != expected)
            throw Fail(path, $"tensor '{name}': data_offsets span {end - begin} bytes but {dtype}[{string.Join(", ", shape)}] needs {expected}");
        return new SafetensorsTensorInfo(name, dtype, shape, dataStart + begin, expected);
    }

    private static void CheckNoOverlap(string path, IEnumerable<SafetensorsTensorInfo> tensors)
    {
        SafetensorsTensorInfo? previous = null;
        foreach (var t in tensors.Where(t => t.ByteLength > 0).OrderBy(t => t.DataOffset))
        {
            if (previous is not null && t.DataOffset < previous.DataOffset + previous.ByteLength)
                throw Fail(path, $"tensors '{previous.Name}' and '{t.Name}' overlap in the data section");
            previous = t;
        }
    }

    /// <summary>Reads one tensor's raw bytes into <paramref name="destination"/> (exactly its byte length).</summary>
    public void ReadInto(SafetensorsTensorInfo tensor, Span<byte> destination)
    {
        if (destination.Length != tensor.ByteLength)
            throw new ArgumentException($"destination is {destination.Length} bytes, tensor '{tensor.Name}' has {tensor.ByteLength}");
        ReadRange(tensor, 0, destination);
    }

    /// <summary>Reads <paramref name="destination"/>.Length bytes of a tensor starting <paramref name="offsetInTensor"/> bytes into it.</summary>
    public void ReadRange(SafetensorsTensorInfo tensor, long offsetInTensor, Span<byte> destination)
    {
        if (offsetInTensor < 0 || offsetInTensor + destination.Length > tensor.ByteLength)
            throw new ArgumentOutOfRangeException(nameof(offsetInTensor), $"range lies outside tensor '{tensor.Name}'");
        using var handle = File.OpenHandle(Path, FileMode.Open, FileAccess.Read);
        long offset = tensor.DataOffset + offsetInTensor;
        while (!destination.IsEmpty)
        {
            int read = RandomAccess.Read(handle, destination, offset);
            if (read == 0)
                throw Fail(Path, $"tensor '{tensor.Name}': file ended while reading (truncated after it was opened?)");
            destination = destination[read..];
            offset += read;
        }
    }

    private static SafetensorsFormatException Fail(string path, string message) => new($"{path}: {message}");
}
