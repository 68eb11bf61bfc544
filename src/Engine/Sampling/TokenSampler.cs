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
        float max = float.NegativeInfinity;
        foreach (float v in logits)
            max = Math.Max(max, v);
        double total = 0;
        for (int i = 0; i < logits.Length; i++)
            if (banned is null || !banned.Contains(i))
                total += Math.Exp((logits[i] - max) * invT);
        if (k == logits.Length && p.TopP >= 1)
        {
            double target = random.NextDouble() * total;
            int last = -1;
            for (int i = 0; i < logits.Length; i++)
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
        double sum = 0;
        foreach (float v in logits)
            sum += Math.Exp(v - max);
        return max + Math.Log(sum);
    }
}
