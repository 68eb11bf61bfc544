using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Serving.Engine.Kernels;

/// <summary><see cref="ITensorElement"/> for bfloat16 memory: one widening load and a shift (bf16 is a float32's upper half).</summary>
internal readonly unsafe struct BFloat16Element : ITensorElement
{
    public static int Size => sizeof(ushort);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(byte* p) =>
        Vector512.ShiftLeft(Vector512.WidenLower(Vector256.Load((ushort*)p).ToVector512Unsafe()), 16).AsSingle();
}
