using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Serving.Engine.Kernels;

/// <summary>bfloat16 ↔ float32 on raw memory: bf16 is the upper half of a float32.</summary>
internal static class Bf16
{
    public static void ToFloat(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        var bits = MemoryMarshal.Cast<float, uint>(destination);
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i + Vector512<ushort>.Count <= source.Length; i += Vector512<ushort>.Count)
            {
                var (lo, hi) = Vector512.Widen(Vector512.Create(source.Slice(i, Vector512<ushort>.Count)));
                Vector512.ShiftLeft(lo, 16).CopyTo(bits.Slice(i));
                Vector512.ShiftLeft(hi, 16).CopyTo(bits.Slice(i + Vector512<uint>.Count));
            }
        }

        for (; i < source.Length; i++)
            bits[i] = (uint)source[i] << 16;
    }

    /// <summary>Rounds to nearest even, as libtorch's float → bfloat16 conversion does (NaN stays NaN).</summary>
    public static ushort FromFloat(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
            return (ushort)((bits >> 16) | 0x40);
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }
}
