using Serving.Contracts.Lora;
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
public static class ArrowRouter
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

        // Per module: one [T, in] × [in, C] product scores every candidate that adapts it.
        var totals = new double[candidates.Count];
        var modules = new int[candidates.Count];
        foreach (var (key, h) in inputs)
        {
            var members = Enumerable.Range(0, candidates.Count)
                .Where(c => candidates[c].Vectors.TryGetValue(key, out var v) && h.Length == tokens * v.Length).ToArray();
            if (members.Length == 0)
                continue;
            int inF = h.Length / tokens;
            var stacked = new float[members.Length * inF];
            for (int i = 0; i < members.Length; i++)
                candidates[members[i]].Vectors[key].CopyTo(stacked, i * inF);
            using var scope = TorchSharp.torch.NewDisposeScope();
            var projections = TorchSharp.torch.tensor(h, [tokens, inF]).mm(TorchSharp.torch.tensor(stacked, [members.Length, inF]).t());
            var mean = projections.abs().mean([0L]).to(TorchSharp.torch.ScalarType.Float64).data<double>().ToArray();
            for (int i = 0; i < members.Length; i++)
            {
                totals[members[i]] += mean[i];
                modules[members[i]]++;
            }
        }

        var scores = totals.Select((t, c) => modules[c] == 0 ? 0 : t / modules[c]).ToArray();

        var order = Enumerable.Range(0, candidates.Count).OrderByDescending(c => scores[c]).ThenBy(c => c).Take(topK).ToArray();
        double max = order.Max(c => scores[c]);
        var exp = order.Select(c => Math.Exp((scores[c] - max) / temperature)).ToArray();
        double z = exp.Sum();
        return (order.Select((c, i) => (c, (float)(exp[i] / z))).ToArray(), scores);
    }
}
