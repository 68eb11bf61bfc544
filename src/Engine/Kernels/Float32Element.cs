using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Serving.Engine.Kernels;

/// <summary><see cref="ITensorElement"/> for float32 memory (pair order is element order).</summary>
internal readonly unsafe struct Float32Element : ITensorElement
{
    public static int Size => sizeof(float);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(byte* p) => Vector512.Load((float*)p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> LoadPairFirst(byte* p) => Vector512.Load((float*)p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> LoadPairSecond(byte* p) => Vector512.Load((float*)p + 16);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void AddPair(byte* p, Vector512<float> first, Vector512<float> second)
    {
        (Vector512.Load((float*)p) + first).Store((float*)p);
        (Vector512.Load((float*)p + 16) + second).Store((float*)p + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StorePair(byte* p, Vector512<float> first, Vector512<float> second)
    {
        first.Store((float*)p);
        second.Store((float*)p + 16);
    }

    public static void ToPairOrder(byte* source, int count, float* destination) =>
        new ReadOnlySpan<float>(source, count).CopyTo(new Span<float>(destination, count));
}
