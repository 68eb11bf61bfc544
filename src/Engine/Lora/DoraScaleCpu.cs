using System.Buffers;
using System.Runtime.Intrinsics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Serving.Contracts.Lora;
using Serving.Engine.Kernels;
using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Engine.Lora;

/// <summary>
/// DoRA's per-slot scale on CPU without libtorch between the steps: a slot fill runs it for every (layer, projection),
/// and there a dozen small tensor operations per module cost more than the arithmetic.
/// <code>
/// P = W·Aᵀ                                    [out, r]   (GemvNative.Wide*, A rounded to W's dtype; without AVX-512
///                                                         SkinnyProductManaged, A in float32)
/// G = A·Aᵀ                                    [r, r]     (float32)
/// n[o]² = ‖W_o‖² + 2s·Σ_j B[o,j]·P[o,j] + s²·Σ_jk B[o,j]·G[j,k]·B[o,k]
/// g[o] = m[o] / n[o];   shift[o] = (1 − g[o])·bias[o]   (0 without a bias)
/// </code>
/// </summary>
internal static unsafe class DoraScaleCpu
{
    /// <summary>float32 lanes of the vectors the per-row norm loops use.</summary>
    private const int Lanes = 8;

    /// <summary>True when <paramref name="weight"/> can be read by the native skinny product or its AVX2 twin.</summary>
    public static bool Applies(Tensor weight) =>
        (GemvNative.IsAvailable || SkinnyProductManaged.IsSupported) && weight.device_type == TorchSharp.DeviceType.CPU && weight.is_contiguous()
        && weight.dtype is ScalarType.Float32 or ScalarType.BFloat16;

    /// <summary>
    /// Writes g and the shift of module <paramref name="w"/> into <paramref name="scale"/> and <paramref name="shift"/>
    /// (each <c>[out]</c>); false, with neither written, when some g is not finite or some norm is not positive.
    /// </summary>
    /// <param name="weight">The base weight <c>[out, in]</c> as served (float32 or bfloat16, contiguous, CPU).</param>
    /// <param name="bias">Its bias <c>[out]</c>, or null.</param>
    /// <param name="baseRowNormsSquared">‖W_o‖² <c>[out]</c>.</param>
    /// <param name="w">The module's weights, with its magnitude.</param>
    /// <param name="scale">Where g goes.</param>
    /// <param name="shift">Where (1 − g)·bias goes.</param>
    public static bool TryFill(Tensor weight, Tensor? bias, ReadOnlySpan<float> baseRowNormsSquared, LoraModuleWeights w, Span<float> scale, Span<float> shift)
    {
        int outF = (int)weight.shape[0], inF = (int)weight.shape[1], rank = w.Rank;
        int padded = (rank + GemvNative.WideRowMultiple - 1) / GemvNative.WideRowMultiple * GemvNative.WideRowMultiple;
        // Pooled: a fill runs this for every module, and fresh buffers of this size would churn the large-object heap.
        float[] productArray = ArrayPool<float>.Shared.Rent(outF * padded);
        float[] normArray = ArrayPool<float>.Shared.Rent(outF);
        try
        {
            Span<float> product = productArray.AsSpan(0, outF * padded), g = normArray.AsSpan(0, outF);
            WeightTimesAT(weight, w.A, rank, padded, product);
            var gram = new float[rank * rank];
            for (int j = 0; j < rank; j++)
                for (int k = j; k < rank; k++)
                    gram[j * rank + k] = gram[k * rank + j] = TensorPrimitives.Dot(w.A.AsSpan(j * inF, inF), w.A.AsSpan(k * inF, inF));
            if (w.Rank % Lanes == 0 && w.Rank <= 4 * Lanes)
                SquaredNormsInRegisters(product, padded, gram, w, baseRowNormsSquared, g);
            else
                SquaredNorms(product, padded, gram, w, baseRowNormsSquared, g);

            TensorPrimitives.Max(g, 0f, g);   // rounding may dip a zero norm below 0
            TensorPrimitives.Sqrt(g, g);
            if (TensorPrimitives.Min(g) <= 0)
                return false;
            TensorPrimitives.Divide(w.Magnitude!, g, g);
            foreach (float v in g)
                if (!float.IsFinite(v))
                    return false;

            g.CopyTo(scale);
            if (bias is null)
                shift.Clear();
            else
            {
                using var bias32 = bias.to(ScalarType.Float32).contiguous();
                ReadOnlySpan<float> b = new(CpuTensorMemory.Address(bias32), outF);
                TensorPrimitives.Multiply(g, b, shift);
                TensorPrimitives.Subtract(b, shift, shift);
            }
            return true;
        }
        finally
        {
            ArrayPool<float>.Shared.Return(productArray);
            ArrayPool<float>.Shared.Return(normArray);
        }
    }

    /// <summary>
    /// n[o]² row by row for a rank of whole 8-lane vectors up to 32 (<see cref="SquaredNorms"/>'s sums): u = G·b_o in up to
    /// four registers per half of the rank's columns, even and odd j in separate registers so the multiply-add chains
    /// overlap; u went through memory before, a store-to-load round trip per multiply-add, and was a fifth of a fill's norms.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void SquaredNormsInRegisters(ReadOnlySpan<float> product, int padded, float[] gram, LoraModuleWeights w, ReadOnlySpan<float> baseRowNormsSquared, Span<float> squared)
    {
        int rank = w.Rank, chunks = rank / Lanes;
        float s = w.Scale;
        fixed (float* g = gram)
        fixed (float* pb = w.B)
        fixed (float* pp = product)
        {
            for (int o = 0; o < squared.Length; o++)
            {
                float* b = pb + (long)o * rank, p = pp + (long)o * padded;
                Vector256<float> e0 = default, e1 = default, e2 = default, e3 = default, d0 = default, d1 = default, d2 = default, d3 = default;
                for (int j = 0; j < rank; j += 2)
                {
                    Vector256<float> bj = Vector256.Create(b[j]), bk = Vector256.Create(b[j + 1]);
                    float* gj = g + j * rank, gk = gj + rank;
                    e0 = Vector256.FusedMultiplyAdd(bj, Vector256.Load(gj), e0);
                    d0 = Vector256.FusedMultiplyAdd(bk, Vector256.Load(gk), d0);
                    if (chunks > 1)
                    {
                        e1 = Vector256.FusedMultiplyAdd(bj, Vector256.Load(gj + Lanes), e1);
                        d1 = Vector256.FusedMultiplyAdd(bk, Vector256.Load(gk + Lanes), d1);
                    }

                    if (chunks > 2)
                    {
                        e2 = Vector256.FusedMultiplyAdd(bj, Vector256.Load(gj + 2 * Lanes), e2);
                        d2 = Vector256.FusedMultiplyAdd(bk, Vector256.Load(gk + 2 * Lanes), d2);
                    }

                    if (chunks > 3)
                    {
                        e3 = Vector256.FusedMultiplyAdd(bj, Vector256.Load(gj + 3 * Lanes), e3);
                        d3 = Vector256.FusedMultiplyAdd(bk, Vector256.Load(gk + 3 * Lanes), d3);
                    }
                }

                var b0 = Vector256.Load(b);
                var cross = Vector256.Load(p) * b0;
                var lora = (e0 + d0) * b0;
                if (chunks > 1)
                {
                    var b1 = Vector256.Load(b + Lanes);
                    cross = Vector256.FusedMultiplyAdd(Vector256.Load(p + Lanes), b1, cross);
                    lora = Vector256.FusedMultiplyAdd(e1 + d1, b1, lora);
                }

                if (chunks > 2)
                {
                    var b2 = Vector256.Load(b + 2 * Lanes);
                    cross = Vector256.FusedMultiplyAdd(Vector256.Load(p + 2 * Lanes), b2, cross);
                    lora = Vector256.FusedMultiplyAdd(e2 + d2, b2, lora);
                }

                if (chunks > 3)
                {
                    var b3 = Vector256.Load(b + 3 * Lanes);
                    cross = Vector256.FusedMultiplyAdd(Vector256.Load(p + 3 * Lanes), b3, cross);
                    lora = Vector256.FusedMultiplyAdd(e3 + d3, b3, lora);
                }

                squared[o] = baseRowNormsSquared[o] + 2 * s * Vector256.Sum(cross) + s * s * Vector256.Sum(lora);
            }
        }
    }

    /// <summary>
    /// n[o]² row by row: u = G·b_o (G is symmetric, so u = Σ_j b_o[j]·G[j, :]) by broadcast multiply-adds over 8-lane
    /// stretches of the rank, then ⟨p_o, b_o⟩ and ⟨u, b_o⟩. Per-row library calls cost more than these few dozen
    /// multiply-adds (a fill takes ~10⁵ rows), so the loops are inline.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void SquaredNorms(ReadOnlySpan<float> product, int padded, float[] gram, LoraModuleWeights w, ReadOnlySpan<float> baseRowNormsSquared, Span<float> squared)
    {
        int rank = w.Rank, whole = rank / Lanes * Lanes;
        float s = w.Scale;
        Span<float> u = stackalloc float[rank];
        fixed (float* g = gram)
        fixed (float* pb = w.B)
        fixed (float* pp = product)
        fixed (float* pu = u)
        {
            for (int o = 0; o < squared.Length; o++)
            {
                float* b = pb + (long)o * rank, p = pp + (long)o * padded;
                u.Clear();
                for (int j = 0; j < rank; j++)
                {
                    var bj = Vector256.Create(b[j]);
                    float* gj = g + j * rank;
                    int c = 0;
                    for (; c < whole; c += Lanes)
                        Vector256.FusedMultiplyAdd(bj, Vector256.Load(gj + c), Vector256.Load(pu + c)).Store(pu + c);
                    for (; c < rank; c++)
                        pu[c] += b[j] * gj[c];
                }

                var cross = Vector256<float>.Zero;
                var lora = Vector256<float>.Zero;
                int i = 0;
                for (; i < whole; i += Lanes)
                {
                    var bi = Vector256.Load(b + i);
                    cross = Vector256.FusedMultiplyAdd(Vector256.Load(p + i), bi, cross);
                    lora = Vector256.FusedMultiplyAdd(Vector256.Load(pu + i), bi, lora);
                }

                float crossSum = Vector256.Sum(cross), loraSum = Vector256.Sum(lora);
                for (; i < rank; i++)
                {
                    crossSum += p[i] * b[i];
                    loraSum += pu[i] * b[i];
                }

                squared[o] = baseRowNormsSquared[o] + 2 * s * crossSum + s * s * loraSum;
            }
        }
    }

    /// <summary>P = W·Aᵀ <c>[out, padded]</c> float32 into <paramref name="product"/>, A rounded to the weight's dtype and padded with zero rows.</summary>
    private static void WeightTimesAT(Tensor weight, float[] a, int rank, int padded, Span<float> product)
    {
        int outF = (int)weight.shape[0], inF = (int)weight.shape[1];
        bool bf16 = weight.dtype == ScalarType.BFloat16;
        if (!GemvNative.IsAvailable)
        {
            fixed (float* px = a)
            fixed (float* py = product)
                SkinnyProductManaged.Multiply(px, rank, inF, inF, (void*)CpuTensorMemory.AddressOf(weight), bf16, outF, py, padded);
            return;
        }

        int ldx = (int)GemvNative.WideRowStride(inF, bf16 ? 2 : 4);
        nint w = CpuTensorMemory.AddressOf(weight);
        // x's rows start on cache lines (CacheLines): the kernel loads every x row a line at a time for each weight row.
        if (bf16)
        {
            ushort[] xArray = ArrayPool<ushort>.Shared.Rent(padded * ldx + CacheLines.Slack<ushort>());
            fixed (ushort* start = xArray)
            fixed (float* py = product)
            {
                ushort* px = CacheLines.Align(start);
                var x = new Span<ushort>(px, padded * ldx);
                x.Clear();
                for (int j = 0; j < rank; j++)
                    Bf16.FromFloat(a.AsSpan(j * inF, inF), x.Slice(j * ldx, inF));
                GemvNative.WideBf16((nint)px, padded, ldx, inF, w, outF, (nint)py, padded);
            }

            ArrayPool<ushort>.Shared.Return(xArray);
        }
        else
        {
            float[] xArray = ArrayPool<float>.Shared.Rent(padded * ldx + CacheLines.Slack<float>());
            fixed (float* start = xArray)
            fixed (float* py = product)
            {
                float* px = CacheLines.Align(start);
                var x = new Span<float>(px, padded * ldx);
                x.Clear();
                for (int j = 0; j < rank; j++)
                    a.AsSpan(j * inF, inF).CopyTo(x.Slice(j * ldx, inF));
                GemvNative.WideF32((nint)px, padded, ldx, inF, w, outF, (nint)py, padded);
            }

            ArrayPool<float>.Shared.Return(xArray);
        }
    }
}
