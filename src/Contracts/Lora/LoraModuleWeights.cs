namespace Serving.Contracts.Lora;

/// <summary>
/// One adapted projection: <c>Δy = Scale · B·(A·x)</c>. A is [Rank, In] and B is [Out, Rank], row-major float32,
/// as PEFT stores them (after undoing <c>fan_in_fan_out</c>). Scale already includes alpha/r or alpha/√r.
/// With <paramref name="Magnitude"/> (DoRA's <c>lora_magnitude_vector</c>, [Out]) the projection becomes
/// <c>y = g ⊙ (W·x + Scale · B·A·x)</c> with <c>g = Magnitude / ‖W + Scale · B·A‖</c> taken row by row over the input
/// dimension (the bias, if any, is added unscaled), as PEFT's DoRA computes it.
/// </summary>
public sealed record LoraModuleWeights(int Layer, LoraTarget Target, int Rank, float Scale, float[] A, float[] B, float[]? Magnitude = null);
