namespace Serving.Contracts.Configuration;

/// <summary><c>rope_scaling</c> of config.json: <c>linear</c> (positions divided by Factor) or <c>llama3</c> (per-frequency smoothing).</summary>
public sealed record RopeScaling(
    RopeScalingKind Kind,
    double Factor,
    double LowFreqFactor = 1.0,
    double HighFreqFactor = 4.0,
    int OriginalMaxPositionEmbeddings = 8192)
{
    public static readonly RopeScaling None = new(RopeScalingKind.None, 1.0);
}
