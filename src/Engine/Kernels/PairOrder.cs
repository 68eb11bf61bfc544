namespace Serving.Engine.Kernels;

/// <summary>Index arithmetic for rows stored in bfloat16 pair order (<see cref="ITensorElement"/>), for scalar loops.</summary>
internal static class PairOrder
{
    /// <summary>
    /// Where element <paramref name="i"/> of a row of <paramref name="count"/> elements is stored: when
    /// <paramref name="paired"/>, each whole group of 32 holds its even elements, then its odd ones; the rest in place.
    /// </summary>
    public static int Index(int i, int count, bool paired)
    {
        if (!paired || i >= count / 32 * 32)
            return i;
        int w = i & 31;
        return (i & ~31) + (w & 1) * 16 + (w >> 1);
    }
}
