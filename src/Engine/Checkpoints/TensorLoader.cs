using Serving.Contracts.Safetensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Checkpoints;

/// <summary>
/// Reads checkpoint tensors into device tensors of the compute dtype. Each destination tensor is allocated once;
/// when the disk dtype matches on CPU the file is read straight into it, otherwise the bytes pass through a small
/// reused staging buffer (<see cref="StagingBytes"/>) that <c>copy_</c> converts chunk by chunk. Peak memory is
/// therefore the final weights plus one staging buffer, never two copies of a tensor.
/// </summary>
public sealed class TensorLoader(CheckpointFiles files, ScalarType dtype, Device device) : IDisposable
{
    public const long StagingBytes = 4L << 20;

    /// <summary>After every tensor read: (checkpoint bytes read so far, the checkpoint's total bytes).</summary>
    public Action<long, long>? Progress { get; init; }

    private long _bytesRead;
    private readonly long _totalBytes = files.TotalBytes;
    private readonly Dictionary<ScalarType, Tensor> _staging = [];

    public ScalarType Dtype { get; } = dtype;
    public Device Device { get; } = device;

    /// <summary>Loads <paramref name="name"/>, checking it has exactly <paramref name="shape"/>.</summary>
    public Tensor Load(string name, params long[] shape) => Load(name, Dtype, shape);

    /// <summary>Loads <paramref name="name"/> as <paramref name="dtype"/> (int8 quantization reads float32), checking its shape.</summary>
    public Tensor Load(string name, ScalarType dtype, params long[] shape)
    {
        var destination = empty(shape, dtype, Device);
        try
        {
            ReadInto(name, shape, destination, whole: true);
            return destination;
        }
        catch
        {
            destination.Dispose();
            throw;
        }
    }

    /// <summary>Loads several tensors stacked along dim 0 into one preallocated tensor (fused projections), as <paramref name="dtype"/> or the loader's.</summary>
    public Tensor LoadConcatenated(IReadOnlyList<(string Name, long[] Shape)> parts, ScalarType? dtype = null)
    {
        long rows = parts.Sum(p => p.Shape[0]);
        long[] shape = [rows, .. parts[0].Shape[1..]];
        var fused = empty(shape, dtype ?? Dtype, Device);
        try
        {
            long offset = 0;
            foreach (var (name, partShape) in parts)
            {
                using var slice = fused.narrow(0, offset, partShape[0]);
                ReadInto(name, partShape, slice, whole: false);
                offset += partShape[0];
            }

            return fused;
        }
        catch
        {
            fused.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads slab <paramref name="index"/> along dim 0 of <paramref name="name"/> (one expert of gpt-oss's stacked experts),
    /// checking the whole tensor has <paramref name="shape"/>: a tensor of <c>shape[1..]</c>, read alone.
    /// </summary>
    public Tensor LoadSlab(string name, long[] shape, long index, ScalarType? dtype = null)
    {
        if ((ulong)index >= (ulong)shape[0])
            throw new ArgumentOutOfRangeException(nameof(index), $"slab {index} of {shape[0]}");
        var destination = empty(shape[1..], dtype ?? Dtype, Device);
        try
        {
            ReadInto(name, shape, destination, whole: false, firstElement: index * destination.NumberOfElements);
            return destination;
        }
        catch
        {
            destination.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads <paramref name="destination"/>'s length of bytes from byte <paramref name="offset"/> of the U8 tensor
    /// <paramref name="name"/> (gpt-oss's MXFP4 blocks and scales), checking it has <paramref name="shape"/>.
    /// </summary>
    public void ReadBytes(string name, long[] shape, long offset, Span<byte> destination)
    {
        var (file, info) = Checked(name, shape, SafetensorsDtype.U8);
        try
        {
            file.ReadRange(info, offset, destination);
            Report(destination.Length);
        }
        catch (SafetensorsFormatException ex)
        {
            throw new ModelLoadException(ex.Message, ex);
        }
    }

    /// <summary>Whether the checkpoint holds <paramref name="name"/>.</summary>
    public bool Contains(string name) => files.Contains(name);

    private (SafetensorsFile File, SafetensorsTensorInfo Info) Checked(string name, long[] shape, SafetensorsDtype? dtype = null)
    {
        var (file, info) = files.Get(name);
        if (!info.Shape.SequenceEqual(shape))
            throw new ModelLoadException($"{file.Path}: tensor '{name}' has shape [{string.Join(", ", info.Shape)}], expected [{string.Join(", ", shape)}]");
        if (dtype is { } only ? info.Dtype != only : info.Dtype is not (SafetensorsDtype.F32 or SafetensorsDtype.F16 or SafetensorsDtype.BF16))
            throw new ModelLoadException($"{file.Path}: tensor '{name}' has dtype {info.Dtype}; {(dtype is { } d ? $"it must be {d}" : "weights must be F32, F16 or BF16")}");
        return (file, info);
    }

    /// <param name="name">The tensor.</param>
    /// <param name="shape">Its shape, checked.</param>
    /// <param name="destination">Where its elements go: all of them, or as many as it holds from <paramref name="firstElement"/>.</param>
    /// <param name="whole">Whether <paramref name="destination"/> is the whole tensor, so that a matching dtype may read straight into it.</param>
    /// <param name="firstElement">The first element read.</param>
    private void ReadInto(string name, long[] shape, Tensor destination, bool whole, long firstElement = 0)
    {
        var (file, info) = Checked(name, shape);
        var diskType = ToScalarType(info.Dtype);
        try
        {
            if (whole && diskType == destination.dtype && Device.type == DeviceType.CPU)
            {
                file.ReadInto(info, destination.bytes);
                Report(info.ByteLength);
                return;
            }

            int elementSize = SafetensorsDtypes.ElementSize(info.Dtype);
            long total = destination.NumberOfElements;
            long chunk = StagingBytes / elementSize;
            var staging = Staging(diskType, chunk);
            using var flat = destination.view(-1);
            for (long start = 0; start < total; start += chunk)
            {
                long n = Math.Min(chunk, total - start);
                using var part = staging.narrow(0, 0, n);
                file.ReadRange(info, (firstElement + start) * elementSize, staging.bytes[..(int)(n * elementSize)]);
                using var target = flat.narrow(0, start, n);
                target.copy_(part);
            }

            Report(total * elementSize);
        }
        catch (SafetensorsFormatException ex)
        {
            throw new ModelLoadException(ex.Message, ex);
        }
    }

    private void Report(long bytes)
    {
        _bytesRead += bytes;
        Progress?.Invoke(_bytesRead, _totalBytes);
    }

    /// <summary>One staging buffer per disk dtype, reused for every tensor so loading does not churn the allocator.</summary>
    private Tensor Staging(ScalarType diskType, long elements)
    {
        if (!_staging.TryGetValue(diskType, out var buffer))
            _staging[diskType] = buffer = empty(elements, diskType, CPU);
        return buffer;
    }

    public void Dispose()
    {
        foreach (var t in _staging.Values)
            t.Dispose();
        _staging.Clear();
    }

    internal static ScalarType ToScalarType(SafetensorsDtype dtype) => dtype switch
    {
        SafetensorsDtype.F32 => ScalarType.Float32,
        SafetensorsDtype.F16 => ScalarType.Float16,
        SafetensorsDtype.BF16 => ScalarType.BFloat16,
        SafetensorsDtype.I32 => ScalarType.Int32,
        SafetensorsDtype.I64 => ScalarType.Int64,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };
}
