namespace Serving.Contracts.Configuration;

/// <summary>
/// <c>rope_scaling</c> of config.json: <c>linear</c> (positions divided by Factor), <c>llama3</c> (per-frequency
/// smoothing) or <c>yarn</c> (frequencies between <see cref="BetaSlow"/> and <see cref="BetaFast"/> rotations over the
/// original context ramped from interpolated to extrapolated, and cos/sin scaled by <see cref="AttentionFactor"/>) or
/// <c>longrope</c> (Phi-3's: each frequency divided by its <see cref="ShortFactor"/>, or its <see cref="LongFactor"/> where
/// the served context exceeds <see cref="OriginalMaxPositionEmbeddings"/>, and cos/sin scaled by <see cref="AttentionFactor"/>).
/// </summary>
public sealed record RopeScaling(
    RopeScalingKind Kind,
    double Factor,
    double LowFreqFactor = 1.0,
    double HighFreqFactor = 4.0,
    int OriginalMaxPositionEmbeddings = 8192,
    double BetaFast = 32,
    double BetaSlow = 1,
    double AttentionFactor = 1.0,
    bool Truncate = true,
    IReadOnlyList<double>? ShortFactor = null,
    IReadOnlyList<double>? LongFactor = null)
{
    public static readonly RopeScaling None = new(RopeScalingKind.None, 1.0);
}
