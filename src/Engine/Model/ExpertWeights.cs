namespace Serving.Engine.Model;

/// <summary>One expert of a mixture-of-experts layer: its gated MLP, gate and up fused as a dense layer's are.</summary>
public sealed class ExpertWeights : IDisposable
{
    public required ProjectionWeight GateUp { get; init; }   // [2·I, hidden], I the experts' intermediate size
    public required ProjectionWeight Down { get; init; }     // [hidden, I]
    public TorchSharp.torch.Tensor? GateUpBias { get; init; } // [2·I], gate's then up's (gpt-oss)
    public TorchSharp.torch.Tensor? DownBias { get; init; }   // [hidden] (gpt-oss)

    public void Dispose()
    {
        GateUp.Dispose();
        Down.Dispose();
        GateUpBias?.Dispose();
        DownBias?.Dispose();
    }
}
