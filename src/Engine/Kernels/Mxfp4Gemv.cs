using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Serving.Engine.Checkpoints;
using Serving.Engine.Quantization;

namespace Serving.Engine.Kernels;

/// <summary>
/// x · Wᵀ for an MXFP4 weight (<see cref="Mxfp4Matrix"/>), read once per call at 4.25 bits a weight:
/// <code>
/// y[m, n] = dt(Σ_g 2^(s[n, g] − 127) · Σ_i (FP4[lo[n, g, i]]·x[m, 32g + 2i] + FP4[hi[n, g, i]]·x[m, 32g + 2i + 1]) + bias[n])   (float32 sums)
/// </code>
/// x's even and odd inputs are split once per call (float32), so each group's 16 low and 16 high nibbles meet their
/// inputs lane for lane: a group is one 16-byte load, two nibble lookups through a 16-entry float table (VPERMPS), two
/// fused multiply-adds and one scaled accumulate per input row. Output rows are shared out over the OpenMP team. Without
/// AVX-512 the same sums run one element at a time. Each row's sum is independent of the call's other rows.
/// </summary>
internal static unsafe class Mxfp4Gemv
{
    /// <summary>
    /// Most rows a tensor call sends here (<see cref="Model.ProjectionWeight.Apply"/>): more are a prefill's, which runs
    /// compute-bound through libtorch's GEMM on the dequantized weight instead (this kernel decodes each group once per
    /// four rows). The fused decode path sends any count.
    /// </summary>
    public const int MaxRows = 16;

    /// <summary>Input rows a pass over a weight row takes (their accumulators stay in registers).</summary>
    private const int GroupRows = 4;

    /// <summary>Fewest output rows a part of the team takes.</summary>
    private const int MinOutputsPerPart = 32;

    private static readonly float[] ScaleOf = [.. Enumerable.Range(0, 256).Select(s => MathF.ScaleB(1f, s - 127))];

    private static readonly float[] Values = [0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f, -0f, -0.5f, -1f, -1.5f, -2f, -3f, -4f, -6f];

    /// <param name="w">The weight [N, K].</param>
    /// <param name="x">[rows, K] bf16 or float32.</param>
    /// <param name="rows">M ≥ 1.</param>
    /// <param name="bf16">x, bias and y (unless <paramref name="float32Output"/>) are bf16, else float32.</param>
    /// <param name="bias">[N] or null.</param>
    /// <param name="y">[rows, N].</param>
    /// <param name="float32Output">y in float32 whatever x is.</param>
    public static void Apply(Mxfp4Matrix w, void* x, int rows, bool bf16, void* bias, void* y, bool float32Output)
    {
        if (rows < 1)
            throw new ArgumentOutOfRangeException(nameof(rows), rows, "an MXFP4 projection takes at least one row");
        int k = w.Columns, half = k / 2;
        float[] split = System.Buffers.ArrayPool<float>.Shared.Rent(checked(rows * k + Runtime.CacheLines.Slack<float>()));
        try
        {
            fixed (float* start = split)
            fixed (byte* blocks = w.Blocks)
            fixed (byte* scales = w.Scales)
            {
                float* xs = Runtime.CacheLines.Align(start);
                // Row m's even inputs at xs[m·K ..], its odd ones half a row on.
                for (int m = 0; m < rows; m++)
                    for (int i = 0; i < half; i++)
                    {
                        long at = (long)m * k + 2 * i;
                        xs[(long)m * k + i] = bf16 ? BitConverter.Int32BitsToSingle(((ushort*)x)[at] << 16) : ((float*)x)[at];
                        xs[(long)m * k + half + i] = bf16 ? BitConverter.Int32BitsToSingle(((ushort*)x)[at + 1] << 16) : ((float*)x)[at + 1];
                    }

                var call = new OutputsCall(xs, rows, k, w.Groups, blocks, scales, (nint)bias, (nint)y, w.Rows, bf16, float32Output);
                int parts = Math.Clamp(w.Rows / MinOutputsPerPart, 1, OpenMpTeam.Threads * 4);
                if (parts == 1)
                    call.Run(0, w.Rows);
                else
                    OpenMpTeam.For(parts, RangeParts<OutputsCall>.Even(call, w.Rows, parts));
            }
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(split);
        }
    }

    private readonly struct OutputsCall(float* xs, int rows, int k, int groups, byte* blocks, byte* scales, nint bias, nint y, int n, bool bf16, bool float32Output)
        : IParallelRange
    {
        public void Run(long from, long to)
        {
            Span<float> sums = stackalloc float[GroupRows];
            for (long o = from; o < to; o++)
            {
                byte* rowBlocks = blocks + o * groups * Mxfp4.BlockBytes, rowScales = scales + o * groups;
                float b = bias == 0 ? 0f : bf16 ? BitConverter.Int32BitsToSingle(((ushort*)bias)[o] << 16) : ((float*)bias)[o];
                for (int m0 = 0; m0 < rows; m0 += GroupRows)
                {
                    int count = Math.Min(GroupRows, rows - m0);
                    if (Avx512F.IsSupported)
                        Dots(rowBlocks, rowScales, groups, xs + (long)m0 * k, k, count, sums);
                    else
                        DotsScalar(rowBlocks, rowScales, groups, xs + (long)m0 * k, k, count, sums);
                    for (int j = 0; j < count; j++)
                    {
                        float value = sums[j] + b;
                        long at = (long)(m0 + j) * n + o;
                        if (float32Output || !bf16)
                            ((float*)y)[at] = value;
                        else
                            ((ushort*)y)[at] = Bf16.FromFloat(value);
                    }
                }
            }
        }
    }

    /// <summary>sums[j] = row j's dot with one weight row, for j &lt; count ≤ 4 input rows of split inputs (stride K).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dots(byte* blocks, byte* scales, int groups, float* xs, int k, int count, Span<float> sums)
    {
        var table = Vector512.Create(Values);
        var low = Vector512.Create(0xF);
        int half = k / 2;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int g = 0; g < groups; g++)
        {
            var codes = Avx512F.ConvertToVector512Int32(Vector128.Load(blocks + g * Mxfp4.BlockBytes));
            var even = Avx512F.PermuteVar16x32(table, codes & low);
            var odd = Avx512F.PermuteVar16x32(table, Vector512.ShiftRightLogical(codes, 4));
            var scale = Vector512.Create(ScaleOf[scales[g]]);
            float* xe = xs + g * 16, xo = xs + half + g * 16;
            a0 = Avx512F.FusedMultiplyAdd(Avx512F.FusedMultiplyAdd(odd, Vector512.Load(xo), even * Vector512.Load(xe)), scale, a0);
            if (count > 1)
                a1 = Avx512F.FusedMultiplyAdd(Avx512F.FusedMultiplyAdd(odd, Vector512.Load(xo + k), even * Vector512.Load(xe + k)), scale, a1);
            if (count > 2)
                a2 = Avx512F.FusedMultiplyAdd(Avx512F.FusedMultiplyAdd(odd, Vector512.Load(xo + 2 * k), even * Vector512.Load(xe + 2 * k)), scale, a2);
            if (count > 3)
                a3 = Avx512F.FusedMultiplyAdd(Avx512F.FusedMultiplyAdd(odd, Vector512.Load(xo + 3 * k), even * Vector512.Load(xe + 3 * k)), scale, a3);
        }

        sums[0] = Vector512.Sum(a0);
        sums[1] = Vector512.Sum(a1);
        sums[2] = Vector512.Sum(a2);
        sums[3] = Vector512.Sum(a3);
    }

    /// <summary><see cref="Dots"/> one element at a time, for CPUs without AVX-512.</summary>
    private static void DotsScalar(byte* blocks, byte* scales, int groups, float* xs, int k, int count, Span<float> sums)
    {
        int half = k / 2;
        for (int j = 0; j < count; j++)
        {
            float total = 0;
            for (int g = 0; g < groups; g++)
            {
                float group = 0;
                for (int i = 0; i < Mxfp4.BlockBytes; i++)
                {
                    byte pair = blocks[g * Mxfp4.BlockBytes + i];
                    group += Values[pair & 0xF] * xs[(long)j * k + g * 16 + i] + Values[pair >> 4] * xs[(long)j * k + half + g * 16 + i];
                }

                total += ScaleOf[scales[g]] * group;
            }

            sums[j] = total;
        }
    }
}
