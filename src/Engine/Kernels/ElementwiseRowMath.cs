using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Serving.Engine.Kernels;

/// <summary>
/// Row bodies of <see cref="CpuElementwiseKernels.RmsNorm(TorchSharp.torch.Tensor, TorchSharp.torch.Tensor, float, TorchSharp.torch.Tensor?)"/> and <see cref="CpuElementwiseKernels.GatedActivation(TorchSharp.torch.Tensor, Serving.Contracts.Configuration.MlpActivation, float)"/> on registers:
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

    /// <summary>One row of a residual add, <c>x = dt(x + r)</c> (libtorch's add in the compute dtype); pointers to H elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Add<T>(byte* x, byte* r, int h) where T : struct, ITensorElement
    {
        for (int i = 0; i < h; i += 32)
        {
            nint offset = (nint)i * T.Size;
            T.StorePair(x + offset, Rounded<T>(T.LoadPairFirst(x + offset) + T.LoadPairFirst(r + offset)),
                Rounded<T>(T.LoadPairSecond(x + offset) + T.LoadPairSecond(r + offset)));
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

    /// <summary>
    /// One row of gpt-oss's clamped SwiGLU, <c>y = dt((clamp(u, −L, L) + 1) · g'·σ(α·g'))</c>, <c>g' = min(g, L)</c>, α = 1.702,
    /// rounded once. Pointers to <paramref name="inter"/> elements.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ClampedSwiglu<T>(byte* gate, byte* up, byte* y, int inter, float limit) where T : struct, ITensorElement
    {
        var high = Vector512.Create(limit);
        var low = Vector512.Create(-limit);
        for (int i = 0; i < inter; i += 32)
        {
            nint offset = (nint)i * T.Size;
            T.StorePair(y + offset, ClampedSwiglu(T.LoadPairFirst(gate + offset), T.LoadPairFirst(up + offset), low, high),
                ClampedSwiglu(T.LoadPairSecond(gate + offset), T.LoadPairSecond(up + offset), low, high));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> ClampedSwiglu(Vector512<float> g, Vector512<float> u, Vector512<float> low, Vector512<float> high)
    {
        g = Vector512.Min(g, high);
        u = Vector512.Min(Vector512.Max(u, low), high);
        return (u + Vector512.Create(1f)) * (g * VectorExp.Sigmoid(g * Vector512.Create(ClampedSwigluAlpha)));
    }

    /// <summary>gpt-oss's α in σ(α·g).</summary>
    public const float ClampedSwigluAlpha = 1.702f;

    /// <summary><see cref="ClampedSwiglu{T}"/> one element at a time, for rows not of whole 32-element tiles.</summary>
    public static void ClampedSwigluScalar(byte* gate, byte* up, byte* y, int inter, float limit, bool bf16)
    {
        for (int i = 0; i < inter; i++)
        {
            float g = MathF.Min(Element(gate, i, bf16), limit), u = Math.Clamp(Element(up, i, bf16), -limit, limit);
            float value = (u + 1) * (g / (1 + MathF.Exp(-ClampedSwigluAlpha * g)));
            if (bf16)
                ((ushort*)y)[i] = Bf16.FromFloat(value);
            else
                ((float*)y)[i] = value;
        }
    }

    private static float Element(byte* row, int i, bool bf16) => bf16 ? BitConverter.UInt32BitsToSingle((uint)((ushort*)row)[i] << 16) : ((float*)row)[i];

    /// <summary>The value a tensor of T would hold: bf16-rounded for bfloat16, unchanged for float32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Rounded<T>(Vector512<float> v) where T : struct, ITensorElement => T.Size == 2 ? Bf16.Round(v) : v;
}
