using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Serving.Engine.Kernels;

/// <summary>
/// <see cref="ITensorElement"/> for bfloat16 memory (bf16 is a float32's upper half). In pair order, one 32-bit lane
/// holds elements 2k (low half) and 2k + 1 (high half): a shift left by 16 gives the even element, a mask the odd one.
/// </summary>
internal readonly unsafe struct BFloat16Element : ITensorElement
{
    public static int Size => sizeof(ushort);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(byte* p) =>
        Vector512.ShiftLeft(Vector512.WidenLower(Vector256.Load((ushort*)p).ToVector512Unsafe()), 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> LoadPairFirst(byte* p) => Vector512.ShiftLeft(Vector512.Load((uint*)p), 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> LoadPairSecond(byte* p) => (Vector512.Load((uint*)p) & Vector512.Create(0xFFFF0000u)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void AddPair(byte* p, Vector512<float> first, Vector512<float> second)
    {
        var bits = Vector512.Load((uint*)p);
        StorePair(p, Vector512.ShiftLeft(bits, 16).AsSingle() + first, (bits & Vector512.Create(0xFFFF0000u)).AsSingle() + second);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StorePair(byte* p, Vector512<float> first, Vector512<float> second) =>
        (Vector512.ShiftRightLogical(Bf16.Round(first).AsUInt32(), 16) | Bf16.Round(second).AsUInt32()).Store((uint*)p);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ToPairOrder(byte* source, int count, float* destination)
    {
        int i = 0;
        for (; i + 32 <= count; i += 32)
        {
            LoadPairFirst(source + 2L * i).Store(destination + i);
            LoadPairSecond(source + 2L * i).Store(destination + i + 16);
        }

        for (; i < count; i++)
            destination[i] = BitConverter.UInt32BitsToSingle((uint)((ushort*)source)[i] << 16);
    }
}
