using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Serving.Engine.Kernels;

/// <summary>bfloat16 ↔ float32 on raw memory: bf16 is the upper half of a float32. Conversions round to nearest even, as libtorch does.</summary>
internal static class Bf16
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ToFloat(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        var bits = MemoryMarshal.Cast<float, uint>(destination);
        int i = 0;
        if (VectorExp.IsSupported)
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

    /// <summary>Finite values only (activations and LoRA updates): NaN payloads are not preserved.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void FromFloat(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        var bits = MemoryMarshal.Cast<float, uint>(source);
        int i = 0;
        if (VectorExp.IsSupported)
        {
            var bias = Vector512.Create(0x7FFFu);
            var one = Vector512.Create(1u);
            for (; i + Vector512<ushort>.Count <= source.Length; i += Vector512<ushort>.Count)
            {
                var lo = Vector512.Create(bits.Slice(i, Vector512<uint>.Count));
                var hi = Vector512.Create(bits.Slice(i + Vector512<uint>.Count, Vector512<uint>.Count));
                lo = Vector512.ShiftRightLogical(lo + bias + (Vector512.ShiftRightLogical(lo, 16) & one), 16);
                hi = Vector512.ShiftRightLogical(hi + bias + (Vector512.ShiftRightLogical(hi, 16) & one), 16);
                Vector512.Narrow(lo, hi).CopyTo(destination.Slice(i));
            }
        }

        for (; i < source.Length; i++)
            destination[i] = FromFloat(source[i]);
    }

    /// <summary>Rounds each value to the nearest bfloat16 (ties to even), kept as float32: what a bf16 tensor op's result holds.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Round(Span<float> values)
    {
        int i = 0;
        if (VectorExp.IsSupported)
        {
            for (; i + Vector512<float>.Count <= values.Length; i += Vector512<float>.Count)
                Round(Vector512.Create(values.Slice(i, Vector512<float>.Count))).CopyTo(values.Slice(i));
        }

        for (; i < values.Length; i++)
            values[i] = BitConverter.UInt32BitsToSingle((uint)FromFloat(values[i]) << 16);
    }

    /// <summary><see cref="Round(Span{float})"/> on 16 lanes (finite values).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Round(Vector512<float> values)
    {
        var bits = values.AsUInt32();
        return ((bits + Vector512.Create(0x7FFFu) + (Vector512.ShiftRightLogical(bits, 16) & Vector512.Create(1u))) & Vector512.Create(0xFFFF0000u)).AsSingle();
    }

    /// <summary>16 values starting at element <paramref name="offset"/> of float32 or bfloat16 memory, as float32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector512<float> Load16(byte* source, int offset, bool bf16) => bf16
        ? BFloat16Element.Load16(source + 2L * offset)
        : Float32Element.Load16(source + 4L * offset);

    public static ushort FromFloat(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
            return (ushort)((bits >> 16) | 0x40);
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }
}
