using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Serving.Engine.Kernels;

/// <summary>
/// e^x on 16 float32 lanes for the kernels' softmax and SiLU: Cody–Waite reduction x = n·ln2 + r (|r| ≤ ln2/2), Cephes'
/// degree-6 polynomial for e^r, then r scaled by 2^n with <c>vscalefps</c> (which also takes the result smoothly to 0
/// below e^−87). Within 2 ulp of the exact value over the whole float range, as libtorch's own (Sleef) exp is within 1.
/// <para>
/// Why not <c>TensorPrimitives.Exp</c>: it computes in float64 for a correctly rounded result, which made the
/// exponentials a fifth of a decode step's attention and most of SwiGLU; a softmax or a sigmoid rounded to bfloat16
/// afterwards has no use for the last ulp.
/// </para>
/// Requires <see cref="IsSupported"/>, as every other Vector512 kernel here.
/// </summary>
internal static class VectorExp
{
    /// <summary>
    /// True where the Vector512 kernels run at vector speed: AVX-512, or AVX2 with FMA, where .NET runs each 512-bit
    /// operation as two 256-bit halves (measured on AMD Zen 2: a dot product at 1.6× the time of the same loop written in
    /// Vector256, against libtorch's per-op dispatch that cost the decode step milliseconds). Below that the lanes fall
    /// back to scalar code, so the kernels stay off.
    /// </summary>
    public static bool IsSupported => Avx512F.IsSupported || Avx2.IsSupported && Fma.IsSupported;

    /// <summary>e^x per lane; NaN stays NaN, +∞ → +∞, −∞ → 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp(Vector512<float> x)
    {
        // Beyond these the result is ∞ or 0 anyway; clamping keeps n and r finite.
        var clamped = Vector512.Min(Vector512.Max(x, Vector512.Create(-104f)), Vector512.Create(88.8f));
        var n = Vector512.Round(clamped * Vector512.Create(1.44269504088896341f));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-0.693359375f), clamped);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(2.12194440e-4f), r);
        var p = Vector512.Create(1.9875691500e-4f);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.3981999507e-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(8.3334519073e-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(4.1665795894e-2f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.6666665459e-1f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(5.0000001201e-1f));
        var e = Vector512.FusedMultiplyAdd(p, r * r, r) + Vector512.Create(1f);
        var result = Avx512F.IsSupported ? Avx512F.Scale(e, n) : ScaleByPowerOfTwo(e, n);
        // NaN inputs: Min/Max above would have replaced them.
        return Vector512.ConditionalSelect(Vector512.Equals(x, x), result, x);
    }

    /// <summary>
    /// e·2ⁿ for integral n in [−151, 129] without <c>vscalefps</c>: 2ⁿ as two normal powers of two, 2^⌊n/2⌋·2^(n−⌊n/2⌋), each
    /// multiplication exact unless the result is subnormal (then rounded once, as vscalefps rounds).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> ScaleByPowerOfTwo(Vector512<float> e, Vector512<float> n)
    {
        var whole = Vector512.ConvertToInt32(n);
        var half = Vector512.ShiftRightArithmetic(whole, 1);
        var bias = Vector512.Create(127);
        return e * Vector512.ShiftLeft(half + bias, 23).AsSingle() * Vector512.ShiftLeft(whole - half + bias, 23).AsSingle();
    }

    /// <summary>
    /// tanh(x) per lane as <c>sign(x)·(1 − 2/(1 + e^{2|x|}))</c>, whose last subtraction rounds |tanh x| near 1 as a
    /// correctly rounded tanh would (what GELU's tanh form and soft-capping, after libtorch's, depend on there).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Tanh(Vector512<float> x)
    {
        var one = Vector512.Create(1f);
        var magnitude = one - Vector512.Create(2f) / (one + Exp(Vector512.Create(2f) * Vector512.Abs(x)));
        return Vector512.ConditionalSelect(Vector512.Create(0x80000000u).AsSingle(), x, magnitude);
    }

    /// <summary>σ(x) = 1 / (1 + e^−x) per lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Sigmoid(Vector512<float> x) => Vector512.Create(1f) / (Vector512.Create(1f) + Exp(-x));
}
