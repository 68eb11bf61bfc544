namespace Serving.LoadTests.Scenarios;

/// <summary>Which adapters the requests name and how often each is picked.</summary>
internal sealed record AdapterSpec
{
    /// <summary>Adapter ids to use; when null the first <see cref="Count"/> adapters the server lists (sorted by id).</summary>
    public string[]? Ids { get; init; }

    /// <summary>Distinct adapters in play (0 = base model only) when <see cref="Ids"/> is null.</summary>
    public int Count { get; init; } = 8;

    /// <summary><c>uniform</c> or <c>zipf</c> (adapter k of n picked with probability ∝ 1/k^s).</summary>
    public string Popularity { get; init; } = "zipf";

    public double ZipfS { get; init; } = 1.0;

    public IEnumerable<string> Validate(Scenario scenario)
    {
        if (Ids is { Length: 0 })
            yield return "adapters.ids: empty; leave it out and set adapters.count instead";
        if (Ids is null && Count < 0)
            yield return $"adapters.count: {Count} is negative";
        if (Popularity is not ("uniform" or "zipf"))
            yield return $"adapters.popularity: '{Popularity}' is not 'uniform' or 'zipf'";
        if (Popularity == "zipf" && !(ZipfS >= 0))
            yield return $"adapters.zipf_s: {ZipfS} must be >= 0";
        int distinct = Ids?.Length ?? Count;
        if (distinct == 0 && (scenario.AutoShare > 0 || scenario.MixtureShare > 0))
            yield return "auto_share / mixture_share need adapters; adapters.count is 0";
        if (scenario.MixtureShare > 0 && distinct < scenario.MixtureSize)
            yield return $"mixture_size: {scenario.MixtureSize} is more than the {distinct} adapters in play";
    }
}
