using Serving.Contracts.Configuration;

namespace Serving.Engine.Model;

/// <summary>
/// Which experts each token runs and with what weight, from the router's logits (the router projection's output in the
/// compute dtype, read as float32), as transformers routes: <c>p = softmax(logits)</c> in float32, the K experts of highest
/// p (ties to the lower index), p renormalised over them where the model says; gpt-oss's
/// (<see cref="MixtureOfExperts.SoftmaxOverTopK"/>): the K of highest logit, weighted by the float32 softmax of those K logits.
/// Computed on the host by both the per-op and the fused decode path, so that the two route alike, bit for bit.
/// </summary>
internal static class ExpertRouting
{
    /// <param name="logits">[rows, experts] float32, row-major.</param>
    /// <param name="rows">Tokens.</param>
    /// <param name="moe">The model's experts.</param>
    /// <param name="experts">[rows · K]: token t's chosen experts at t·K.., highest probability first.</param>
    /// <param name="weights">[rows · K]: their weights (float32; the caller rounds them to the compute dtype).</param>
    public static void Route(ReadOnlySpan<float> logits, int rows, MixtureOfExperts moe, Span<int> experts, Span<float> weights)
    {
        int e = moe.Experts, k = moe.TopK;
        Span<float> p = e <= 256 ? stackalloc float[e] : new float[e];
        for (int t = 0; t < rows; t++)
        {
            var row = logits.Slice(t * e, e);
            var chosen = experts.Slice(t * k, k);
            var chosenWeights = weights.Slice(t * k, k);
            if (moe.SoftmaxOverTopK)
            {
                row.CopyTo(p);
                TopK(p, chosen, chosenWeights, float.NegativeInfinity);
                float top = chosenWeights[0], total = 0;          // the highest first: the softmax's max
                for (int j = 0; j < k; j++)
                    total += chosenWeights[j] = MathF.Exp(chosenWeights[j] - top);
                for (int j = 0; j < k; j++)
                    chosenWeights[j] /= total;
                continue;
            }

            float max = float.NegativeInfinity, sum = 0;
            foreach (float z in row)
                max = MathF.Max(max, z);
            for (int i = 0; i < e; i++)
                sum += p[i] = MathF.Exp(row[i] - max);
            for (int i = 0; i < e; i++)
                p[i] /= sum;
            TopK(p, chosen, chosenWeights, -1);

            if (moe.NormalizeTopK)
            {
                float total = 0;
                foreach (float w in chosenWeights)
                    total += w;
                for (int j = 0; j < k; j++)
                    chosenWeights[j] /= total;
            }
        }
    }

    /// <summary>
    /// The K highest of <paramref name="scores"/> (ties to the lower index), highest first, each overwritten by
    /// <paramref name="taken"/> (below every score) once chosen.
    /// </summary>
    private static void TopK(Span<float> scores, Span<int> chosen, Span<float> values, float taken)
    {
        for (int j = 0; j < chosen.Length; j++)
        {
            int best = -1;
            for (int i = 0; i < scores.Length; i++)
                if (scores[i] > taken && (best < 0 || scores[i] > scores[best]))
                    best = i;
            for (int i = 0; best < 0; i++)                     // NaN or −∞ scores left: the lowest index not yet chosen
                if (!chosen[..j].Contains(i))
                    best = i;
            chosen[j] = best;
            values[j] = scores[best];
            scores[best] = taken;
        }
    }

    /// <summary>A shared expert's weight for a token, σ(its gate logit), in float32 (the caller rounds it to the compute dtype).</summary>
    public static float SharedGate(float logit) => 1 / (1 + MathF.Exp(-logit));
}
