namespace Serving.Engine.Lora;

/// <summary>
/// A DoRA module's per-row output scale <c>g = m / ‖W + scale·B·A‖</c> and shift <c>(1 − g) ⊙ bias</c>, each <c>[out]</c>
/// float32, as a slot fill computed them over the served base weights: kept by <see cref="LoraModuleArena"/> for as long as
/// the module's host copy lives, so a refill of the same adapter version copies them instead of taking the norms again.
/// </summary>
public sealed record DoraRowScale(float[] Scale, float[] Shift);
