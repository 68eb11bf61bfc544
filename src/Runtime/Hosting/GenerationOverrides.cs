namespace Serving.Runtime.Hosting;

/// <summary>
/// <c>Serving:Model:GenerationOverrides</c> (vLLM's <c>--override-generation-config</c>): request defaults set over the
/// generation config's; unset fields keep its values.
/// </summary>
public sealed class GenerationOverrides
{
    public double? Temperature { get; set; }
    public double? TopP { get; set; }
    public int? TopK { get; set; }
    public double? RepetitionPenalty { get; set; }
    public double? MinP { get; set; }

    /// <summary>The most tokens any request may generate (<see cref="Serving.Contracts.Configuration.GenerationDefaults.MaxNewTokens"/>).</summary>
    public int? MaxNewTokens { get; set; }

    /// <summary>The problems with the values, each naming its setting.</summary>
    public IEnumerable<string> Validate()
    {
        if (Temperature is < 0 or > 2 || Temperature is double t && double.IsNaN(t))
            yield return "Serving:Model:GenerationOverrides:Temperature must be in [0, 2]";
        if (TopP is <= 0 or > 1 || TopP is double p && double.IsNaN(p))
            yield return "Serving:Model:GenerationOverrides:TopP must be in (0, 1]";
        if (TopK is < -1)
            yield return "Serving:Model:GenerationOverrides:TopK must be -1 or 0 (off) or positive";
        if (RepetitionPenalty is <= 0 or > 100 || RepetitionPenalty is double r && double.IsNaN(r))
            yield return "Serving:Model:GenerationOverrides:RepetitionPenalty must be in (0, 100]";
        if (MinP is < 0 or > 1 || MinP is double m && double.IsNaN(m))
            yield return "Serving:Model:GenerationOverrides:MinP must be in [0, 1]";
        if (MaxNewTokens is < 1)
            yield return "Serving:Model:GenerationOverrides:MaxNewTokens must be at least 1";
    }
}
