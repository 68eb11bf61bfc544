namespace Serving.Contracts.Configuration;

/// <summary>The gated MLP's activation of its gate half, <c>act(gate) · up</c>.</summary>
public enum MlpActivation
{
    /// <summary><c>silu(g) = g · σ(g)</c> (SwiGLU: Llama, Mistral, Qwen, Granite).</summary>
    Silu,

    /// <summary>GELU's tanh approximation, <c>g · σ(2·√(2/π)·(g + 0.044715·g³))</c> (GeGLU: Gemma's <c>gelu_pytorch_tanh</c>).</summary>
    GeluTanh,

    /// <summary>
    /// gpt-oss's clamped SwiGLU (<see cref="ModelConfig.SwigluLimit"/> L): <c>(clamp(u, −L, L) + 1) · g'·σ(1.702·g')</c> with
    /// <c>g' = min(g, L)</c> — the up half transformed too.
    /// </summary>
    ClampedSwiglu,
}
