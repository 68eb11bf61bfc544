using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Serving.Engine.Kernels;

/// <summary><c>silu(g) = g · σ(g)</c> (SwiGLU).</summary>
internal readonly struct SiluGate : IGateActivation
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Apply(Vector512<float> g) => g * VectorExp.Sigmoid(g);

    public static float Apply(float g) => g / (1 + MathF.Exp(-g));
}
