using Serving.Contracts.Configuration;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>
/// A step's <see cref="StepIndices"/> for each (KV group, window) its layers use: whole-context and sliding-window layers
/// (Gemma 3 slides in five layers of six, Qwen2 from <c>max_window_layers</c> on) differ in the rows each token attends to,
/// and layers of different KV groups (<see cref="KvCacheGroups"/>) in where each token's K/V is written too. All hold the same
/// tokens and positions. A model of one kind builds one.
/// </summary>
internal sealed class StepWindows : IDisposable
{
    private readonly StepIndices[] _indices;
    private readonly int[] _ofLayer;

    public StepWindows(ForwardBatch batch, KvCache cache, ScalarType dtype, Device device, ModelConfig config)
    {
        var kinds = new List<(int Group, int? Window)>();
        _ofLayer = new int[config.NumLayers];
        for (int l = 0; l < config.NumLayers; l++)
        {
            var kind = (cache.Groups.GroupOf(l), config.WindowOf(l));
            int k = kinds.IndexOf(kind);
            if (k < 0)
            {
                k = kinds.Count;
                kinds.Add(kind);
            }

            _ofLayer[l] = k;
        }

        _indices = new StepIndices[kinds.Count];
        try
        {
            for (int k = 0; k < kinds.Count; k++)
                _indices[k] = new StepIndices(batch, cache, dtype, device, kinds[k].Window, kinds[k].Group, config.BidirectionalAttention);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>
    /// The indices of the first layer's kind, for what every layer shares (tokens, positions, the logits rows); where K/V is
    /// written and which rows are attended are each layer's own (<see cref="For"/>).
    /// </summary>
    public StepIndices Shared => _indices[0];

    /// <summary>Layer <paramref name="layer"/>'s indices: its group's rows and its window's attended rows.</summary>
    public StepIndices For(int layer) => _indices[_ofLayer[layer]];

    public void Dispose()
    {
        foreach (var indices in _indices)
            indices?.Dispose();
    }
}
