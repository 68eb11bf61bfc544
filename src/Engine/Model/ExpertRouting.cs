using Serving.Contracts.Configuration;

namespace Serving.Engine.Model;

/// <summary>
/// Which experts each token runs and with what weight, from the router's logits (the router projection's output in the
/// compute dtype, read as float32), as transformers routes: <c>p = softmax(logits)</c> in float32, the K experts of highest
/// p (ties to the lower index), p renormalised over them where the model says. Computed on the host by both the per-op
/// and the fused decode path, so that the two route alike, bit for bit.
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
            float max = float.NegativeInfinity, sum = 0;
            foreach (float z in row)
                max = MathF.Max(max, z);
            for (int i = 0; i < e; i++)
                sum += p[i] = MathF.Exp(row[i] - max);
            for (int i = 0; i < e; i++)
                p[i] /= sum;
            var chosen = experts.Slice(t * k, k);
            var chosenWeights = weights.Slice(t * k, k);
            for (int j = 0; j < k; j++)
            {
                int best = -1;
                for (int i = 0; i < e; i++)
                    if (p[i] >= 0 && (best < 0 || p[i] > p[best]))
                        best = i;
                chosen[j] = best;
                chosenWeights[j] = p[best];
                p[best] = -1;                              // taken
            }

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

    /// <summary>A shared expert's weight for a token, σ(its gate logit), in float32 (the caller rounds it to the compute dtype).</summary>
    public static float SharedGate(float logit) => 1 / (1 + MathF.Exp(-logit));
}
