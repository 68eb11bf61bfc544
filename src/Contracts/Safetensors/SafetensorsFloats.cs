using System.Runtime.InteropServices;

namespace Serving.Contracts.Safetensors;

/// <summary>A tensor's bytes as float32 values on the host.</summary>
public static class SafetensorsFloats
{
    /// <summary><paramref name="bytes"/> (one tensor's, <paramref name="dtype"/> elements) widened to float32; null for a dtype other than F32, F16 or BF16.</summary>
    public static float[]? Read(ReadOnlySpan<byte> bytes, SafetensorsDtype dtype)
    {
        float[] values;
        switch (dtype)
        {
            case SafetensorsDtype.F32:
                values = GC.AllocateUninitializedArray<float>(bytes.Length / sizeof(float));
                MemoryMarshal.Cast<byte, float>(bytes).CopyTo(values);
                return values;
            case SafetensorsDtype.F16:
            {
                var halves = MemoryMarshal.Cast<byte, Half>(bytes);
                values = GC.AllocateUninitializedArray<float>(halves.Length);
                for (int i = 0; i < halves.Length; i++)
                    values[i] = (float)halves[i];
                return values;
            }
            case SafetensorsDtype.BF16:
            {
                var words = MemoryMarshal.Cast<byte, ushort>(bytes);
                values = GC.AllocateUninitializedArray<float>(words.Length);
                var bits = MemoryMarshal.Cast<float, uint>(values.AsSpan());
                for (int i = 0; i < words.Length; i++)
                    bits[i] = (uint)words[i] << 16;
                return values;
            }
            default:
                return null;
        }
    }
}
