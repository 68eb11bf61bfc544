using System.Runtime.Intrinsics;
using Serving.Engine.Kernels;
using Serving.Contracts.Generation;

namespace Serving.Engine.Sampling;

/// <summary>
/// Picks the next token from one row of float32 logits: the request's adjustments (<see cref="LogitAdjustments"/>), the
/// output constraint's mask, then temperature with top-k, min-p and top-p. Logprobs are reported from the raw distribution
/// (log_softmax of the logits, before any of that), as vLLM does by default.
/// </summary>
internal static class TokenSampler
{
    /// <param name="logits">One row of float32 logits <c>[vocab]</c>.</param>
    /// <param name="p">The request's sampling parameters.</param>
    /// <param name="random">The sequence's generator.</param>
    /// <param name="allowed">Under an output constraint: the tokens that may be chosen (bit i of the mask, plus the listed
    /// ids); the others are taken out before temperature, top-k and top-p, so those act on the allowed tokens alone.
    /// Logprobs still come from the raw distribution.</param>
    /// <param name="history">The sequence's tokens, for the penalties (<see cref="LogitAdjustments"/>); null when none applies.</param>
    /// <param name="suppressed">Tokens that may not be chosen at this step (stop tokens before <see cref="SamplingParams.MinTokens"/>).</param>
    public static SampledToken Sample(ReadOnlySpan<float> logits, SamplingParams p, SeededRandom random,
        (ulong[] Mask, IReadOnlyCollection<int> AlsoAllowed)? allowed = null, TokenHistory? history = null, IReadOnlyCollection<int>? suppressed = null)
    {
        var raw = logits;
        if (p.AdjustsLogits)
            logits = LogitAdjustments.Apply(logits, p, history, suppressed ?? []);
        // A temperature whose reciprocal overflows float32 (below ~3e-39) samples the maximum anyway: take it as greedy
        // rather than scale logits by infinity.
        bool greedy = p.Temperature == 0 || p.TopK == 1 || float.IsInfinity((float)(1.0 / p.Temperature));
        var choose = allowed is { } a ? Masked(logits, a.Mask, a.AlsoAllowed) : logits;
        // The request's own rules can leave no token (allowed_token_ids all stop tokens before min_tokens, or none of them
        // inside the output constraint's mask). Rules then give way in this order rather than draw from all −∞: the
        // constraint (the sequence ends incomplete on the token outside it), then the stop tokens' suppression.
        if ((allowed is not null || p.AdjustsLogits) && float.IsNegativeInfinity(System.Numerics.Tensors.TensorPrimitives.Max(choose)))
        {
            choose = logits;
            if (float.IsNegativeInfinity(System.Numerics.Tensors.TensorPrimitives.Max(choose)))
                choose = p.AdjustsLogits ? LogitAdjustments.Apply(raw, p, history, []) : raw;
        }

        int chosen = greedy ? Math.Max(0, System.Numerics.Tensors.TensorPrimitives.IndexOfMax(choose)) : SampleFiltered(choose, p, random);
        if (p.Logprobs is null)
            return new SampledToken(chosen, float.NaN, []);
        double logZ = LogSumExp(raw);
        var top = new (int, float)[p.Logprobs.Value];
        if (top.Length > 0)
        {
            int[] best = TopIndices(raw, top.Length);
            for (int i = 0; i < best.Length; i++)
                top[i] = (best[i], (float)(raw[best[i]] - logZ));
        }

        return new SampledToken(chosen, (float)(raw[chosen] - logZ), top);
    }

    /// <summary>
    /// Scores <paramref name="token"/> under one row of float32 logits <c>[vocab]</c> (the raw distribution, as sampled
    /// tokens' logprobs): its log-probability, its rank (1 + the tokens strictly more likely) and the <paramref name="top"/>
    /// most likely tokens.
    /// </summary>
    public static PromptTokenLogprob Score(ReadOnlySpan<float> logits, int token, int top)
    {
        double logZ = LogSumExp(logits);
        float logit = logits[token];
        int rank = 1;
        foreach (float l in logits)
            if (l > logit)
                rank++;
        var alternatives = new (int, float)[top];
        if (top > 0)
        {
            int[] best = TopIndices(logits, top);
            for (int i = 0; i < best.Length; i++)
                alternatives[i] = (best[i], (float)(logits[best[i]] - logZ));
        }

        return new PromptTokenLogprob(token, (float)(logit - logZ), rank, alternatives);
    }

    [ThreadStatic] private static float[]? _masked;

    /// <summary>The logits with every token outside <paramref name="mask"/> ∪ <paramref name="also"/> at −∞, in a per-thread buffer.</summary>
    internal static ReadOnlySpan<float> Masked(ReadOnlySpan<float> logits, ReadOnlySpan<ulong> mask, IReadOnlyCollection<int> also)
    {
        if (_masked is null || _masked.Length < logits.Length)
            _masked = new float[logits.Length];
        var m = _masked.AsSpan(0, logits.Length);
        m.Fill(float.NegativeInfinity);
        int words = Math.Min(mask.Length, (logits.Length + 63) / 64);
        for (int w = 0; w < words; w++)
        {
            ulong bits = mask[w];
            int at = w * 64;
            if (bits == ulong.MaxValue && at + 64 <= logits.Length)
            {
                logits.Slice(at, 64).CopyTo(m.Slice(at, 64));
                continue;
            }

            while (bits != 0)
            {
                int i = at + System.Numerics.BitOperations.TrailingZeroCount(bits);
                if (i < logits.Length)
                    m[i] = logits[i];
                bits &= bits - 1;
            }
        }

        foreach (int id in also)
            if ((uint)id < (uint)logits.Length)
                m[id] = logits[id];
        return m;
    }

    private static int SampleFiltered(ReadOnlySpan<float> logits, SamplingParams p, SeededRandom random)
    {
        int k = p.TopK > 0 ? Math.Min(p.TopK, logits.Length) : logits.Length;
        float invT = (float)(1.0 / p.Temperature);
        if (k == logits.Length && p.TopP >= 1 && p.MinP <= 0)
        {
            float max = System.Numerics.Tensors.TensorPrimitives.Max(logits);
            double target = random.NextDouble() * SumExp(logits, max, invT);
            int start = 0;
            if (FindInChunks(logits, max, invT, ref target, ref start) is int found)
                return found;
            for (int i = start; i < logits.Length; i++)        // rounding can leave a sliver of mass past the last chunk
            {
                target -= Math.Exp((logits[i] - max) * invT);
                if (target < 0)
                    return i;
            }

            return logits.Length - 1;
        }

        // Filters as thresholds on the weights w = exp((logit − max) / T), found by bisection in O(vocabulary) passes
        // with no sort: top-k keeps w ≥ the k-th largest weight, top-p then keeps the largest threshold whose kept mass
        // is still ≥ p of the top-k mass (the smallest nucleus; tokens tied at a threshold are all kept, as HF's top-k
        // keeps ties). Why: growing a sorted candidate prefix cost a full heap selection over the vocabulary per growth,
        // ~1.5 ms per row on a flat 32k distribution (top-p 0.95), on every row of every step.
        var w = Weights(logits, invT);
        // min_p keeps p ≥ min_p · p_max, which on weights relative to the maximum (whose weight is 1) is w ≥ min_p.
        float kThreshold = Math.Max(k < logits.Length ? LargestThreshold(w, 0f, k, double.NaN) : 0f, (float)p.MinP);
        float threshold = p.TopP < 1 ? LargestThreshold(w, kThreshold, 0, p.TopP * Mass(w, kThreshold)) : kThreshold;

        double u = random.NextDouble() * Mass(w, threshold);
        int last = -1;
        for (int i = 0; i < w.Length; i++)
        {
            if (w[i] < threshold || w[i] == 0)
                continue;
            last = i;
            u -= w[i];
            if (u < 0)
                return i;
        }

        return Math.Max(last, 0);
    }

    [ThreadStatic] private static float[]? _weights;

    /// <summary>exp((logits − max) / T) in a per-thread buffer (−∞ logits, masked tokens, weigh 0).</summary>
    private static Span<float> Weights(ReadOnlySpan<float> logits, float invT)
    {
        if (_weights is null || _weights.Length < logits.Length)
            _weights = new float[logits.Length];
        var w = _weights.AsSpan(0, logits.Length);
        logits.CopyTo(w);
        float max = System.Numerics.Tensors.TensorPrimitives.Max(w);
        if (float.IsNegativeInfinity(max))
        {
            w.Clear();
            return w;
        }

        int i = 0;
        if (VectorExp.IsSupported)
        {
            var maxes = Vector512.Create(max);
            var scale = Vector512.Create(invT);
            for (; i + Lanes <= w.Length; i += Lanes)
                VectorExp.Exp((Vector512.Create(w.Slice(i, Lanes)) - maxes) * scale).CopyTo(w.Slice(i, Lanes));
        }

        for (; i < w.Length; i++)
            w[i] = (float)Math.Exp((w[i] - max) * invT);
        return w;
    }

    /// <summary>
    /// The largest t ≥ <paramref name="floor"/> that keeps, of the weights ≥ t, at least <paramref name="count"/> non-zero
    /// ones (count &gt; 0) or at least <paramref name="mass"/> of weight (otherwise). Both fall as t rises, so this is a
    /// bisection over the bit patterns of non-negative floats, which order as the floats do; the answer is one of the
    /// weights (or the floor).
    /// </summary>
    private static float LargestThreshold(ReadOnlySpan<float> w, float floor, int count, double mass)
    {
        int lo = BitConverter.SingleToInt32Bits(floor), hi = BitConverter.SingleToInt32Bits(System.Numerics.Tensors.TensorPrimitives.Max(w));
        while (lo < hi)
        {
            int mid = lo + (hi - lo + 1) / 2;
            float t = BitConverter.Int32BitsToSingle(mid);
            if (count > 0 ? Count(w, t) >= count : Mass(w, t) >= mass)
                lo = mid;
            else
                hi = mid - 1;
        }

        return BitConverter.Int32BitsToSingle(lo);
    }

    /// <summary>How many weights are ≥ t and non-zero.</summary>
    private static int Count(ReadOnlySpan<float> w, float t)
    {
        int count = 0, i = 0;
        if (Kernels.CpuVectorKernels.IsSupported)
        {
            var ts = Vector512.Create(Math.Max(t, float.Epsilon));
            var counts = Vector512<int>.Zero;
            for (; i + Lanes <= w.Length; i += Lanes)
                counts -= Vector512.GreaterThanOrEqual(Vector512.Create(w.Slice(i, Lanes)), ts).AsInt32();
            count = Vector512.Sum(counts);
        }

        for (; i < w.Length; i++)
            if (w[i] >= t && w[i] > 0)
                count++;
        return count;
    }

    /// <summary>Σ of the weights ≥ t.</summary>
    private static double Mass(ReadOnlySpan<float> w, float t)
    {
        double mass = 0;
        int i = 0;
        if (Kernels.CpuVectorKernels.IsSupported)
        {
            var ts = Vector512.Create(t);
            Vector512<float> a = default, b = default;
            for (; i + 2 * Lanes <= w.Length; i += 2 * Lanes)
            {
                var x = Vector512.Create(w.Slice(i, Lanes));
                var y = Vector512.Create(w.Slice(i + Lanes, Lanes));
                a += Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(x, ts), x, Vector512<float>.Zero);
                b += Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(y, ts), y, Vector512<float>.Zero);
            }

            mass = Vector512.Sum(a) + (double)Vector512.Sum(b);
        }

        for (; i < w.Length; i++)
            if (w[i] >= t)
                mass += w[i];
        return mass;
    }

    /// <summary>Indices of the <paramref name="count"/> largest logits, largest first (ties: lower id first).</summary>
    internal static int[] TopIndices(ReadOnlySpan<float> logits, int count)
    {
        var heap = new PriorityQueue<int, (float Value, int NegId)>(count + 1);
        for (int i = 0; i < logits.Length; i++)
        {
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
