using Serving.Contracts.Configuration;
using Serving.Contracts.Lora;
using Serving.Engine.Lora;
using Serving.Engine.Sampling;

namespace Serving.Engine.Tests.Support;

internal static class RandomAdapters
{
    /// <summary>A LoRA adapter with normal random A and B (B non-zero so it changes outputs).</summary>
    public static LoraAdapterWeights Create(ModelConfig c, string name, int rank, IEnumerable<LoraTarget> targets, ulong seed, float scale, IReadOnlySet<int>? layers = null)
    {
        var random = new SeededRandom(seed);
        float Normal(double std)
        {
            double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
            return (float)(std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }

        var modules = new List<LoraModuleWeights>();
        foreach (var target in targets)
            for (int layer = 0; layer < c.NumLayers; layer++)
            {
                if (layers is not null && !layers.Contains(layer))
                    continue;
                var (inF, outF) = LoraTargets.Shape(c, target);
                var a = Enumerable.Range(0, rank * inF).Select(_ => Normal(1.0 / Math.Sqrt(inF))).ToArray();
                var b = Enumerable.Range(0, outF * rank).Select(_ => Normal(1.0 / Math.Sqrt(rank))).ToArray();
                modules.Add(new LoraModuleWeights(layer, target, rank, scale, a, b));
            }

        return new LoraAdapterWeights(name, modules);
    }

    /// <summary>
    /// A LoRA adapter of a mixture of experts' experts (gate, up and down of every expert of <paramref name="layers"/>),
    /// with <paramref name="attention"/>'s modules in every layer besides.
    /// </summary>
    public static LoraAdapterWeights CreateExperts(ModelConfig c, string name, int rank, IReadOnlyList<int> layers, ulong seed, float scale, IEnumerable<LoraTarget>? attention = null)
    {
        var dense = Create(c, name, rank, attention ?? [], seed, scale);
        var random = new SeededRandom(seed ^ 0x9E3779B97F4A7C15);
        float Normal(double std)
        {
            double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
            return (float)(std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }

        var modules = new List<LoraModuleWeights>(dense.Modules);
        foreach (int layer in layers)
            for (int e = 0; e < c.Experts!.Experts; e++)
                foreach (var target in LoraTargets.ExpertTargets)
                {
                    var (inF, outF) = LoraTargets.ExpertShape(c, target);
                    var a = Enumerable.Range(0, rank * inF).Select(_ => Normal(1.0 / Math.Sqrt(inF))).ToArray();
                    var b = Enumerable.Range(0, outF * rank).Select(_ => Normal(1.0 / Math.Sqrt(rank))).ToArray();
                    modules.Add(new LoraModuleWeights(layer, target, rank, scale, a, b, Expert: e));
                }

        return new LoraAdapterWeights(name, modules);
    }
}
