using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Serving.Engine.Kernels;

/// <summary><see cref="ITensorElement"/> for float32 memory.</summary>
internal readonly unsafe struct Float32Element : ITensorElement
{
    public static int Size => sizeof(float);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(byte* p) => Vector512.Load((float*)p);
}
