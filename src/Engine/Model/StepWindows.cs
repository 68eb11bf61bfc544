using Serving.Contracts.Configuration;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>
/// A step's <see cref="StepIndices"/> for each kind of layer the model has: whole-context and sliding-window (Gemma 3 slides
/// in five layers of six, Qwen2 from <c>max_window_layers</c> on). Both hold the same tokens, positions and cache rows; they
/// differ in the rows each token attends to. A model of one kind builds one.
/// </summary>
internal sealed class StepWindows : IDisposable
{
    private readonly ModelConfig _config;
    private readonly StepIndices? _full, _sliding;

    public StepWindows(ForwardBatch batch, KvCache cache, ScalarType dtype, Device device, ModelConfig config)
    {
        _config = config;
        bool anyFull = config.SlidingWindow is null || config.FullAttentionLayers.Count > 0;
        bool anySliding = config.SlidingWindow is not null && config.FullAttentionLayers.Count < config.NumLayers;
        try
        {
            _full = anyFull ? new StepIndices(batch, cache, dtype, device) : null;
            _sliding = anySliding ? new StepIndices(batch, cache, dtype, device, config.SlidingWindow) : null;
        }
        catch
        {
            _full?.Dispose();
            throw;
        }
    }

    /// <summary>The indices every layer shares (tokens, positions, where K/V is written, the logits rows).</summary>
    public StepIndices Shared => _full ?? _sliding!;

    /// <summary>Layer <paramref name="layer"/>'s indices: its window's attended rows.</summary>
    public StepIndices For(int layer) => _config.WindowOf(layer) is null ? _full! : _sliding!;

    public void Dispose()
    {
        _sliding?.Dispose();
        _full?.Dispose();
    }
}
