namespace Serving.Engine.Routing;

/// <summary>
/// The router for adapters that ship example prompts: each adapter's centroid is the mean, over its examples, of the
/// mean-pooled base-model hidden state (the input of the routed layers' attention); a request goes to the nearest
/// centroids by cosine similarity, mixed by a softmax of the similarities.
/// <code>
/// c_a = mean over examples e of mean over tokens t of h_e[t]        (then normalised)
/// s_a = cos(mean over t of h[t], c_a);   chosen = top-k of s;   weight = softmax(s / T)
/// </code>
/// </summary>
public static class CentroidRouter
{
    /// <summary>Mean-pools one prompt's hidden states <c>[tokens, dim]</c> (row-major) into a unit vector.</summary>
    public static float[] Pool(float[] hidden, int tokens)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(tokens, 1);
        int dim = hidden.Length / tokens;
        var mean = new float[dim];
        for (int t = 0; t < tokens; t++)
            System.Numerics.Tensors.TensorPrimitives.Add(mean, new ReadOnlySpan<float>(hidden, t * dim, dim), mean);
        return Normalize(mean);
    }

    /// <summary>The centroid of several pooled examples (each from <see cref="Pool"/>), normalised.</summary>
    public static float[] Centroid(IReadOnlyList<float[]> pooled)
    {
        if (pooled.Count == 0)
            throw new ArgumentException("a centroid needs at least one example");
        var sum = new float[pooled[0].Length];
        foreach (var p in pooled)
            System.Numerics.Tensors.TensorPrimitives.Add(sum, p, sum);
        return Normalize(sum);
    }

    /// <returns>Chosen centroids (index), best first, with weights summing to 1, and every similarity.</returns>
    public static (IReadOnlyList<(int Candidate, float Weight)> Chosen, double[] Scores) Route(IReadOnlyList<float[]> centroids, float[] pooledPrompt, int topK,
        double temperature)
    {
        if (centroids.Count == 0)
            throw new ArgumentException("no candidate adapters to route between");
        ArgumentOutOfRangeException.ThrowIfLessThan(topK, 1);
        if (!(temperature > 0) || !double.IsFinite(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), "the temperature must be positive and finite");
        var scores = centroids.Select(c => (double)System.Numerics.Tensors.TensorPrimitives.Dot(c, pooledPrompt)).ToArray();
        var order = Enumerable.Range(0, centroids.Count).OrderByDescending(c => scores[c]).ThenBy(c => c).Take(topK).ToArray();
        double max = order.Max(c => scores[c]);
        var exp = order.Select(c => Math.Exp((scores[c] - max) / temperature)).ToArray();
        double z = exp.Sum();
        return (order.Select((c, i) => (c, (float)(exp[i] / z))).ToArray(), scores);
    }

    private static float[] Normalize(float[] v)
    {
        float norm = System.Numerics.Tensors.TensorPrimitives.Norm(v);
        if (norm > 0)
            System.Numerics.Tensors.TensorPrimitives.Divide(v, norm, v);
        return v;
    }
}
