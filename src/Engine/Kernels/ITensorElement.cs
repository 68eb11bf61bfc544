using System.Runtime.Intrinsics;

namespace Serving.Engine.Kernels;

/// <summary>
/// How a kernel reads one element type of tensor memory as float32 lanes. Kernels written generically over a struct
/// implementing this are compiled once per element type, so the hot loops carry no per-load dtype branch.
/// <para>
/// Pair order: 32 consecutive elements read as two float32 vectors, First and Second. For float32 these are elements
/// 0–15 and 16–31; for bfloat16 the even and the odd elements, which one 64-byte load, a shift and a mask produce (half
/// the widening work of two <see cref="Load16"/>). A dot product over pairs is the same sum when the other operand is
/// laid out in the same order (<see cref="ToPairOrder"/>); outputs computed in pair order go back through
/// <see cref="AddPair"/>.
/// </para>
/// </summary>
internal unsafe interface ITensorElement
{
    /// <summary>Bytes per element.</summary>
    static abstract int Size { get; }

    /// <summary>16 elements at <paramref name="p"/> as float32 lanes.</summary>
    static abstract Vector512<float> Load16(byte* p);

    /// <summary>The first vector of the 32 elements at <paramref name="p"/> in pair order.</summary>
    static abstract Vector512<float> LoadPairFirst(byte* p);

    /// <summary>The second vector of the 32 elements at <paramref name="p"/> in pair order.</summary>
    static abstract Vector512<float> LoadPairSecond(byte* p);

    /// <summary>Adds (first, second), in pair order, to the 32 elements at <paramref name="p"/> (rounded once for bfloat16).</summary>
    static abstract void AddPair(byte* p, Vector512<float> first, Vector512<float> second);

    /// <summary>Stores (first, second), in pair order, as the 32 elements at <paramref name="p"/> (rounded once for bfloat16).</summary>
    static abstract void StorePair(byte* p, Vector512<float> first, Vector512<float> second);

    /// <summary>
    /// <paramref name="count"/> elements at <paramref name="source"/> as float32: each whole group of 32 in pair order
    /// (First, then Second), the remainder in element order.
    /// </summary>
    static abstract void ToPairOrder(byte* source, int count, float* destination);
}
