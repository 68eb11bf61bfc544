using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Serving.Engine.Kernels;

/// <summary>
/// GELU's tanh approximation (PyTorch's <c>gelu(approximate='tanh')</c>, Gemma's <c>gelu_pytorch_tanh</c>):
/// <c>½·g·(1 + tanh(u))</c>, <c>u = √(2/π)·(g + 0.044715·g³)</c> (<see cref="VectorExp.Tanh"/>). Why this form and not the equal <c>g·σ(2u)</c>: for g below about −4, 1 + tanh(u) cancels to
/// a few multiples of 2⁻²⁴ in float32, and libtorch's kernel (so HF's model) returns those coarse values; the sigmoid form
/// would be more exact there and so round differently in bf16 (13 % of random rows' values did).
/// </summary>
internal readonly struct GeluTanhGate : IGateActivation
{
    private const float Beta = 0.7978845608028654f;            // √(2/π)
    private const float BetaKappa = 0.035677408136300125f;     // √(2/π)·0.044715

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Apply(Vector512<float> g)
    {
        var u = g * Vector512.FusedMultiplyAdd(g * g, Vector512.Create(BetaKappa), Vector512.Create(Beta));
        return Vector512.Create(0.5f) * g * (Vector512.Create(1f) + VectorExp.Tanh(u));
    }

    public static float Apply(float g)
    {
        float u = g * (Beta + BetaKappa * g * g);
        return 0.5f * g * (1 + MathF.Tanh(u));
    }
}
