namespace Serving.Contracts.Lora;

/// <summary>
/// One adapted projection: <c>Δy = Scale · B·(A·x)</c>. A is [Rank, In] and B is [Out, Rank], row-major float32,
/// as PEFT stores them (after undoing <c>fan_in_fan_out</c>). Scale already includes alpha/r or alpha/√r.
/// With <paramref name="Magnitude"/> (DoRA's <c>lora_magnitude_vector</c>, [Out]) the projection becomes
/// <c>y = g ⊙ (W·x + Scale · B·A·x)</c> with <c>g = Magnitude / ‖W + Scale · B·A‖</c> taken row by row over the input
/// dimension (the bias, if any, is added unscaled), as PEFT's DoRA computes it.
/// With <paramref name="Expert"/> the projection is that expert's gate, up or down projection in the layer's mixture of
/// experts (<see cref="LoraTargets.ExpertShape"/>), applied to the tokens routed to it; null: the layer's own projection.
/// </summary>
public sealed record LoraModuleWeights(int Layer, LoraTarget Target, int Rank, float Scale, float[] A, float[] B, float[]? Magnitude = null, int? Expert = null);
