namespace Serving.Contracts.Lora;

/// <summary>
/// One adapted projection: <c>Δy = Scale · B·(A·x)</c>. A is [Rank, In] and B is [Out, Rank], row-major float32,
/// as PEFT stores them (after undoing <c>fan_in_fan_out</c>). Scale already includes alpha/r or alpha/√r.
/// </summary>
public sealed record LoraModuleWeights(int Layer, LoraTarget Target, int Rank, float Scale, float[] A, float[] B);
