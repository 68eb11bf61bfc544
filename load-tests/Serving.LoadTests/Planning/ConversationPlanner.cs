using Serving.LoadTests.Clients;
using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.Planning;

/// <summary>
/// One closed-loop worker's conversations (see <see cref="ConversationSpec"/>). The plan depends only on the seed, the
/// worker and the answers the server gives: greedy answers are the same for two configurations that compute the same
/// tokens (prefix caching on and off), so both see the same requests.
/// </summary>
internal sealed class ConversationPlanner
{
    private readonly Scenario _scenario;
    private readonly ConversationSpec _spec;
    private readonly string _baseModel;
    private readonly IReadOnlyList<string> _adapters;
    private readonly int _tenant;
    private readonly int[] _systemPrompt;
    private readonly LoadRandom _random;
    private readonly List<int> _history = [];
    private string _model;
    private int _turn;
    private int[] _pendingUserTurn = [];

    public ConversationPlanner(Scenario scenario, string baseModel, IReadOnlyList<string> adapters, int worker)
    {
        _scenario = scenario;
        _spec = scenario.Conversations ?? throw new ArgumentException("the scenario has no conversations", nameof(scenario));
        _baseModel = baseModel;
        _adapters = adapters;
        _tenant = worker % _spec.Tenants;
        _systemPrompt = SystemPrompt(scenario, _tenant);
        _random = new LoadRandom(scenario.Seed ^ (0xD1B54A32D192ED03UL * (ulong)(worker + 1)));
        _model = StartConversation();
    }

    /// <summary>The tenant's fixed system prompt: the same tokens for every worker of the tenant.</summary>
    public static int[] SystemPrompt(Scenario scenario, int tenant)
    {
        var random = new LoadRandom(scenario.Seed ^ (0xA0761D6478BD642FUL * (ulong)(tenant + 1)));
        return scenario.RandomTokens(random, scenario.Conversations!.SystemPromptTokens);
    }

    /// <summary>The conversation's next turn: system prompt + history + a new user turn.</summary>
    public PlannedRequest Next(int index)
    {
        _pendingUserTurn = _scenario.RandomTokens(_random, _spec.UserTokens.Sample(_random));
        int[] prompt = [.. _systemPrompt, .. _history, .. _pendingUserTurn];
        var kind = _model == _baseModel ? RequestKind.Base : RequestKind.Adapter;
        return new PlannedRequest(index, kind, _model, [], prompt, _scenario.OutputTokens.Sample(_random), TimeSpan.Zero,
            _spec.TenantKeys?[_tenant]);
    }

    /// <summary>Appends the turn and its answer to the history; a failed turn or the last one ends the conversation.</summary>
    public void Record(RequestOutcome outcome)
    {
        if (outcome.Succeeded && outcome.OutputTokenIds is { } answer && ++_turn < _spec.Turns)
        {
            _history.AddRange(_pendingUserTurn);
            _history.AddRange(answer);
            return;
        }

        _model = StartConversation();
    }

    private string StartConversation()
    {
        _history.Clear();
        _turn = 0;
        return _spec.AdaptersPerTenant == 0 ? _baseModel : _adapters[_tenant * _spec.AdaptersPerTenant + _random.Next(_spec.AdaptersPerTenant)];
    }
}
