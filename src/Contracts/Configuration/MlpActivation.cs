namespace Serving.Contracts.Configuration;

/// <summary>The gated MLP's activation of its gate half, <c>act(gate) · up</c>.</summary>
public enum MlpActivation
{
    /// <summary><c>silu(g) = g · σ(g)</c> (SwiGLU: Llama, Mistral, Qwen, Granite).</summary>
    Silu,

    /// <summary>GELU's tanh approximation, <c>g · σ(2·√(2/π)·(g + 0.044715·g³))</c> (GeGLU: Gemma's <c>gelu_pytorch_tanh</c>).</summary>
    GeluTanh,
}
