using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Serving.Engine.Kernels;

/// <summary>
/// Row bodies of <see cref="CpuElementwiseKernels.RmsNorm(TorchSharp.torch.Tensor, TorchSharp.torch.Tensor, float, TorchSharp.torch.Tensor?)"/> and <see cref="CpuElementwiseKernels.GatedActivation(TorchSharp.torch.Tensor, Serving.Contracts.Configuration.MlpActivation)"/> on registers:
/// each element is loaded once per pass, in pair order (<see cref="ITensorElement"/>; element-wise maths does not care
/// about the order as long as every operand and the output use it), with the same bf16 roundings as the op chains.
/// Why: the span-at-a-time versions made 6–7 passes over each row through float32 scratch buffers, and SiLU went
/// through a float64 exp; at decode, where rows are few, that was 3–10× the cost of the bytes.
/// Requires <see cref="VectorExp.IsSupported"/> and a row width that is a multiple of 32 (<see cref="Supports"/>).
/// </summary>
internal static unsafe class ElementwiseRowMath
{
    public static bool Supports(int width) => VectorExp.IsSupported && width % 32 == 0;

    /// <summary>
    /// One row of RMSNorm, <c>y = w ⊙ dt(x · 1/√(Σx²/H + ε))</c>; given <paramref name="residual"/> (else null), first
    /// <c>x = dt(x + residual)</c> stored back into x. Pointers to H elements.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RmsNorm<T>(byte* x, byte* residual, byte* weight, byte* y, int h, float eps) where T : struct, ITensorElement
    {
        var sum0 = Vector512<float>.Zero;
        var sum1 = Vector512<float>.Zero;
        for (int i = 0; i < h; i += 32)
        {
            byte* xi = x + (nint)i * T.Size;
            var first = T.LoadPairFirst(xi);
            var second = T.LoadPairSecond(xi);
            if (residual != null)
            {
                byte* ri = residual + (nint)i * T.Size;
                first = Rounded<T>(first + T.LoadPairFirst(ri));
                second = Rounded<T>(second + T.LoadPairSecond(ri));
                T.StorePair(xi, first, second);
            }

            sum0 = Vector512.FusedMultiplyAdd(first, first, sum0);
            sum1 = Vector512.FusedMultiplyAdd(second, second, sum1);
        }

        var inv = Vector512.Create(1f / MathF.Sqrt(Vector512.Sum(sum0 + sum1) / h + eps));
        for (int i = 0; i < h; i += 32)
        {
            nint offset = (nint)i * T.Size;
            var first = Rounded<T>(T.LoadPairFirst(x + offset) * inv) * T.LoadPairFirst(weight + offset);
            var second = Rounded<T>(T.LoadPairSecond(x + offset) * inv) * T.LoadPairSecond(weight + offset);
            T.StorePair(y + offset, first, second);
        }
    }

    /// <summary>One row of a gated activation, <c>y = dt(act(g)) · u</c>; pointers to I elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void GatedActivation<T, TAct>(byte* gate, byte* up, byte* y, int inter) where T : struct, ITensorElement where TAct : struct, IGateActivation
    {
        for (int i = 0; i < inter; i += 32)
        {
            nint offset = (nint)i * T.Size;
            var first = Rounded<T>(TAct.Apply(T.LoadPairFirst(gate + offset))) * T.LoadPairFirst(up + offset);
            var second = Rounded<T>(TAct.Apply(T.LoadPairSecond(gate + offset))) * T.LoadPairSecond(up + offset);
            T.StorePair(y + offset, first, second);
        }
    }

    /// <summary>The value a tensor of T would hold: bf16-rounded for bfloat16, unchanged for float32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Rounded<T>(Vector512<float> v) where T : struct, ITensorElement => T.Size == 2 ? Bf16.Round(v) : v;
}
