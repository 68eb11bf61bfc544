using System.Runtime.Intrinsics;
using Serving.Engine.Kernels;

namespace Serving.Engine.Sampling;

/// <summary>
/// Picks the next token from one row of float32 logits. Logprobs are reported from the raw distribution
/// (log_softmax of the logits, before temperature and filtering), as vLLM does by default.
/// </summary>
internal static class TokenSampler
{
    public static SampledToken Sample(ReadOnlySpan<float> logits, SamplingParams p, SeededRandom random, ISet<int>? bannedIds = null)
    {
        int chosen = p.Temperature == 0 || p.TopK == 1 ? ArgMax(logits, bannedIds) : SampleFiltered(logits, p, random, bannedIds);
        if (p.Logprobs is null)
            return new SampledToken(chosen, float.NaN, []);
        double logZ = LogSumExp(logits);
        var top = new (int, float)[p.Logprobs.Value];
        if (top.Length > 0)
        {
            int[] best = TopIndices(logits, top.Length, null);
            for (int i = 0; i < best.Length; i++)
                top[i] = (best[i], (float)(logits[best[i]] - logZ));
        }

        return new SampledToken(chosen, (float)(logits[chosen] - logZ), top);
    }

    private static int ArgMax(ReadOnlySpan<float> logits, ISet<int>? banned)
    {
        if (banned is null)
            return Math.Max(0, System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits));
        int best = -1;
        float bestValue = float.NegativeInfinity;
        for (int i = 0; i < logits.Length; i++)
        {
            if (logits[i] > bestValue && (banned is null || !banned.Contains(i)))
            {
                best = i;
                bestValue = logits[i];
            }
        }

        return best >= 0 ? best : 0;
    }

    private static int SampleFiltered(ReadOnlySpan<float> logits, SamplingParams p, SeededRandom random, ISet<int>? banned)
    {
        // Candidates in descending logit order: the top-k, or for top-p a prefix grown until it holds p of the mass.
        int k = p.TopK > 0 ? Math.Min(p.TopK, logits.Length) : logits.Length;
        double invT = 1.0 / p.Temperature;
        float max = System.Numerics.Tensors.TensorPrimitives.Max(logits);
        double total = 0;
        if (banned is null)
            total = SumExp(logits, max, (float)invT);
        else
            for (int i = 0; i < logits.Length; i++)
                if (!banned.Contains(i))
                    total += Math.Exp((logits[i] - max) * invT);
        if (k == logits.Length && p.TopP >= 1)
        {
            double target = random.NextDouble() * total;
            int start = 0;
            if (banned is null && FindInChunks(logits, max, (float)invT, ref target, ref start) is int found)
                return found;
            int last = start - 1;                   // rounding can leave a sliver of mass past the last chunk: its last id
            for (int i = start; i < logits.Length; i++)
            {
                if (banned is not null && banned.Contains(i))
                    continue;
                last = i;
                target -= Math.Exp((logits[i] - max) * invT);
                if (target < 0)
                    return i;
            }

            return Math.Max(last, 0);
        }

        int take = Math.Min(k, 64);
        while (true)
        {
            int[] candidates = TopIndices(logits, take, banned);
            double mass = 0;
            int keep = 0;
            var weights = new double[candidates.Length];
            for (int i = 0; i < candidates.Length; i++)
            {
                weights[i] = Math.Exp((logits[candidates[i]] - max) * invT);
                mass += weights[i];
                keep = i + 1;
                if (p.TopP < 1 && mass / total >= p.TopP)
                    break;
            }

            bool enough = keep < candidates.Length || take >= k || (p.TopP < 1 && mass / total >= p.TopP);
            if (!enough)
            {
                take = Math.Min(k, take * 4);
                continue;
            }

            double u = random.NextDouble() * mass;
            for (int i = 0; i < keep; i++)
            {
                u -= weights[i];
                if (u < 0)
                    return candidates[i];
            }

            return candidates[keep - 1];
        }
    }

    /// <summary>Indices of the <paramref name="count"/> largest logits, largest first (ties: lower id first).</summary>
    internal static int[] TopIndices(ReadOnlySpan<float> logits, int count, ISet<int>? banned)
    {
        var heap = new PriorityQueue<int, (float Value, int NegId)>(count + 1);
        for (int i = 0; i < logits.Length; i++)
        {
            if (banned is not null && banned.Contains(i))
                continue;
            if (heap.Count < count)
            {
                heap.Enqueue(i, (logits[i], -i));
            }
            else if (heap.TryPeek(out _, out var smallest) && (logits[i], -i).CompareTo(smallest) > 0)
            {
                heap.DequeueEnqueue(i, (logits[i], -i));
            }
        }

        var result = new int[heap.Count];
        for (int j = result.Length - 1; j >= 0; j--)
            result[j] = heap.Dequeue();
        return result;
    }

    private static double LogSumExp(ReadOnlySpan<float> logits)
    {
        float max = System.Numerics.Tensors.TensorPrimitives.Max(logits);
        return max + Math.Log(SumExp(logits, max, 1f));
    }

    /// <summary>
    /// Σ exp((logits[i] − max) · invT) over the whole row: 16 lanes at a time through <see cref="VectorExp"/> (within 1 ulp)
    /// where AVX-512 is available, the rest in float64. Why: one float64 exp per vocabulary entry was most of a sampled
    /// token's cost (a 32k vocabulary: ≈ 0.2 ms per row, on the engine thread).
    /// </summary>
    private static double SumExp(ReadOnlySpan<float> logits, float max, float invT)
    {
        double total = 0;
        int i = 0;
        if (VectorExp.IsSupported && logits.Length >= Lanes)
        {
            var maxes = Vector512.Create(max);
            var scale = Vector512.Create(invT);
            Vector512<float> a = default, b = default;
            for (; i + 2 * Lanes <= logits.Length; i += 2 * Lanes)
            {
                a += VectorExp.Exp((Vector512.Create(logits.Slice(i, Lanes)) - maxes) * scale);
                b += VectorExp.Exp((Vector512.Create(logits.Slice(i + Lanes, Lanes)) - maxes) * scale);
            }

            total = Vector512.Sum(a) + (double)Vector512.Sum(b);
        }

        for (; i < logits.Length; i++)
            total += Math.Exp((logits[i] - max) * invT);
        return total;
    }

    /// <summary>
    /// The inverse-CDF walk of unfiltered sampling over whole 16-id chunks: subtracts each chunk's mass from
    /// <paramref name="target"/> until one holds it, then walks that chunk's ids. Returns the id, or null with
    /// <paramref name="next"/> at the first id not yet visited (the caller finishes the walk one id at a time).
    /// </summary>
    private static int? FindInChunks(ReadOnlySpan<float> logits, float max, float invT, ref double target, ref int next)
    {
        if (!VectorExp.IsSupported)
            return null;
        var maxes = Vector512.Create(max);
        var scale = Vector512.Create(invT);
        for (; next + Lanes <= logits.Length; next += Lanes)
        {
            var e = VectorExp.Exp((Vector512.Create(logits.Slice(next, Lanes)) - maxes) * scale);
            double mass = Vector512.Sum(e);
            if (target - mass >= 0)
            {
                target -= mass;
                continue;
            }

            for (int lane = 0; lane < Lanes; lane++)
            {
                target -= e[lane];
                if (target < 0)
                    return next + lane;
            }
        }

        return null;
    }

    private const int Lanes = 16;
}
