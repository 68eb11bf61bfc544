using Serving.Engine.Lora;

namespace Serving.Engine.Routing;

/// <summary>
/// Request-level Arrow routing: scores each candidate adapter by how strongly the prompt's hidden states project onto
/// its prototypes, keeps the top k and mixes them by a softmax of their scores.
/// <code>
/// score[c] = mean over modules m (of c, with captured inputs) of  mean over prompt tokens t of |h_m[t] · v_{c,m}|
/// chosen   = top-k of score;   weight[c] = softmax(score[c] / T) over the chosen
/// </code>
/// </summary>
internal static class ArrowRouter
{
    /// <param name="candidates">Prototypes of the adapters the request may use.</param>
    /// <param name="inputs">Per module, the inputs its projection saw for the prompt: [tokens, in] row-major.</param>
    /// <param name="tokens">Prompt tokens in each input.</param>
    /// <param name="topK">How many adapters to mix (≥ 1).</param>
    /// <param name="temperature">Softmax temperature (&gt; 0); smaller sharpens the mix.</param>
    /// <returns>Chosen candidates (index into <paramref name="candidates"/>), best first, with weights summing to 1, and every score.</returns>
    public static (IReadOnlyList<(int Candidate, float Weight)> Chosen, double[] Scores) Route(IReadOnlyList<ArrowPrototypes> candidates,
        IReadOnlyDictionary<(int Layer, LoraTarget Target), float[]> inputs, int tokens, int topK, double temperature)
    {
        if (candidates.Count == 0)
            throw new ArgumentException("no candidate adapters to route between");
        ArgumentOutOfRangeException.ThrowIfLessThan(topK, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(tokens, 1);
        if (!(temperature > 0) || !double.IsFinite(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), "the temperature must be positive and finite");

        var scores = new double[candidates.Count];
        for (int c = 0; c < candidates.Count; c++)
        {
            double total = 0;
            int modules = 0;
            foreach (var (key, v) in candidates[c].Vectors)
            {
                if (!inputs.TryGetValue(key, out var h) || h.Length != tokens * v.Length)
                    continue;
                double sum = 0;
                for (int t = 0; t < tokens; t++)
                    sum += Math.Abs(System.Numerics.Tensors.TensorPrimitives.Dot(new ReadOnlySpan<float>(h, t * v.Length, v.Length), v));
                total += sum / tokens;
                modules++;
            }

            scores[c] = modules == 0 ? 0 : total / modules;
        }

        var order = Enumerable.Range(0, candidates.Count).OrderByDescending(c => scores[c]).ThenBy(c => c).Take(topK).ToArray();
        double max = order.Max(c => scores[c]);
        var exp = order.Select(c => Math.Exp((scores[c] - max) / temperature)).ToArray();
        double z = exp.Sum();
        return (order.Select((c, i) => (c, (float)(exp[i] / z))).ToArray(), scores);
    }
}
