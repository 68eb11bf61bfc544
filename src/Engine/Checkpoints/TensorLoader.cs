using Serving.Engine.Safetensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Checkpoints;

/// <summary>
/// Reads checkpoint tensors one at a time into device tensors of the compute dtype. The file bytes go straight
/// into a CPU tensor of the disk dtype, which is then converted (or used as is): at most one tensor exists in
/// two copies at any moment, so peak memory stays near the final weight bytes.
/// </summary>
public sealed class TensorLoader(CheckpointFiles files, ScalarType dtype, Device device)
{
    public ScalarType Dtype { get; } = dtype;
    public Device Device { get; } = device;

    /// <summary>Loads <paramref name="name"/>, checking it has exactly <paramref name="shape"/>.</summary>
    public Tensor Load(string name, params long[] shape)
    {
        var (file, info) = files.Get(name);
        if (!info.Shape.SequenceEqual(shape))
            throw new ModelLoadException($"{file.Path}: tensor '{name}' has shape [{string.Join(", ", info.Shape)}], expected [{string.Join(", ", shape)}]");
        if (info.Dtype is not (SafetensorsDtype.F32 or SafetensorsDtype.F16 or SafetensorsDtype.BF16))
            throw new ModelLoadException($"{file.Path}: tensor '{name}' has dtype {info.Dtype}; weights must be F32, F16 or BF16");

        var raw = empty(info.Shape, ToScalarType(info.Dtype), CPU);
        try
        {
            file.ReadInto(info, raw.bytes);
        }
        catch (SafetensorsFormatException ex)
        {
            raw.Dispose();
            throw new ModelLoadException(ex.Message, ex);
        }

        if (raw.dtype == Dtype && Device.type == DeviceType.CPU)
            return raw;
        using (raw)
            return raw.to(Dtype, Device);
    }

    /// <summary>Loads several tensors stacked along dim 0 into one preallocated tensor (fused projections).</summary>
    public Tensor LoadConcatenated(IReadOnlyList<(string Name, long[] Shape)> parts)
    {
        long rows = parts.Sum(p => p.Shape[0]);
        long[] shape = [rows, .. parts[0].Shape[1..]];
        var fused = empty(shape, Dtype, Device);
        long offset = 0;
        foreach (var (name, partShape) in parts)
        {
            using var part = Load(name, partShape);
            using var slice = fused.narrow(0, offset, partShape[0]);
            slice.copy_(part);
            offset += partShape[0];
        }

        return fused;
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
