namespace Serving.LoadTests.Scenarios;

/// <summary>
/// A token-count distribution: <c>fixed</c> (<see cref="Value"/>), <c>uniform</c> over [Min, Max], or
/// <c>lognormal</c> with median <see cref="Value"/> and shape <see cref="Sigma"/>, clamped to [Min, Max] (the
/// long-tailed shape of real prompt and answer lengths).
/// </summary>
internal sealed record LengthSpec
{
    public string Distribution { get; init; } = "fixed";

    public int Value { get; init; } = 64;

    public int Min { get; init; } = 1;

    public int Max { get; init; } = 4096;

    public double Sigma { get; init; } = 0.5;

    public IEnumerable<string> Validate(string key, int minimum)
    {
        if (Distribution is not ("fixed" or "uniform" or "lognormal"))
            yield return $"{key}.distribution: '{Distribution}' is not 'fixed', 'uniform' or 'lognormal'";
        if (Distribution == "fixed" && Value < minimum)
            yield return $"{key}.value: {Value} is below {minimum}";
        if (Distribution != "fixed" && (Min < minimum || Max < Min))
            yield return $"{key}: min {Min} / max {Max} must satisfy {minimum} <= min <= max";
        if (Distribution == "lognormal" && (Value < 1 || !(Sigma > 0)))
            yield return $"{key}: lognormal needs value (median) >= 1 and sigma > 0";
    }

    public int Sample(LoadRandom random) => Distribution switch
    {
        "fixed" => Value,
        "uniform" => Min + (int)(random.NextDouble() * (Max - Min + 1)),
        _ => Math.Clamp((int)Math.Round(Value * Math.Exp(Sigma * random.NextGaussian())), Min, Max),
    };
}
