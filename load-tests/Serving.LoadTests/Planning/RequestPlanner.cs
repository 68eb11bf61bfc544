using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.Planning;

/// <summary>
/// Draws the run's requests from the scenario, deterministically from its seed: the kind (adapter / auto / mixture /
/// base), the adapter by popularity, prompt and output lengths, random prompt token ids and (open loop) the arrival
/// offsets of a Poisson process. A mixture's first adapter follows the popularity; the others are drawn uniformly.
/// </summary>
internal sealed class RequestPlanner
{
    private readonly Scenario _scenario;
    private readonly string _baseModel;
    private readonly IReadOnlyList<string> _adapters;
    private readonly ZipfDistribution? _popularity;
    private readonly LoadRandom _random;
    private TimeSpan _clock;
    private int _next;

    public RequestPlanner(Scenario scenario, string baseModel, IReadOnlyList<string> adapters)
    {
        _scenario = scenario;
        _baseModel = baseModel;
        _adapters = adapters;
        _popularity = adapters.Count == 0 ? null : new ZipfDistribution(adapters.Count, scenario.Adapters.Popularity == "zipf" ? scenario.Adapters.ZipfS : 0);
        _random = new LoadRandom(scenario.Seed);
    }

    public IReadOnlyList<string> Adapters => _adapters;

    public string BaseModel => _baseModel;

    public PlannedRequest Next()
    {
        int index = _next++;
        if (_scenario.Arrival.Mode == "poisson")
            _clock += TimeSpan.FromSeconds(_random.NextExponential(1 / _scenario.Arrival.Rate));
        double kindDraw = _random.NextDouble();
        int promptLength = _scenario.PromptTokens.Sample(_random);
        int maxTokens = _scenario.OutputTokens.Sample(_random);
        var prompt = _scenario.RandomTokens(_random, promptLength);
        if (_popularity is null)
            return new PlannedRequest(index, RequestKind.Base, _baseModel, [], prompt, maxTokens, _clock);
        string adapter = _adapters[_popularity.Sample(_random)];
        if (kindDraw < _scenario.AutoShare)
            return new PlannedRequest(index, RequestKind.Auto, "auto", [], prompt, maxTokens, _clock);
        if (kindDraw < _scenario.AutoShare + _scenario.MixtureShare)
        {
            var mixture = new List<(string, double)> { (adapter, 0) };
            while (mixture.Count < _scenario.MixtureSize)
            {
                string other = _adapters[_random.Next(_adapters.Count)];
                if (mixture.All(m => m.Item1 != other))
                    mixture.Add((other, 0));
            }

            double share = 1.0 / mixture.Count;
            return new PlannedRequest(index, RequestKind.Mixture, _baseModel, [.. mixture.Select(m => (m.Item1, share))], prompt, maxTokens, _clock);
        }

        return new PlannedRequest(index, RequestKind.Adapter, adapter, [], prompt, maxTokens, _clock);
    }
}
