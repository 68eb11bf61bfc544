namespace Serving.LoadTests.Scenarios;

/// <summary>
/// Chat-shaped traffic: each closed-loop worker is one user of tenant <c>worker % tenants</c> holding multi-turn
/// conversations. Every request of a tenant starts with that tenant's system prompt (<see cref="SystemPromptTokens"/>
/// fixed random tokens), then the conversation's history — earlier user turns and the answers the server actually
/// gave, as token ids — then a new user turn. A conversation uses one of its tenant's <see cref="AdaptersPerTenant"/>
/// adapters (tenant t owns adapters [t·k, (t+1)·k) of those in play) and ends after <see cref="Turns"/> turns or a
/// failed request; the worker then starts a new one. This is the traffic prefix caching is for.
/// </summary>
internal sealed record ConversationSpec
{
    public int Tenants { get; init; } = 8;

    /// <summary>One API key per tenant (sent as its <c>Authorization: Bearer</c>); null = every tenant sends the scenario's key.</summary>
    public string[]? TenantKeys { get; init; }

    /// <summary>Adapters each tenant owns; 0 = every conversation uses the base model.</summary>
    public int AdaptersPerTenant { get; init; } = 4;

    public int SystemPromptTokens { get; init; } = 512;

    public int Turns { get; init; } = 4;

    /// <summary>Length of each new user turn (the answers' lengths are the scenario's <c>output_tokens</c>).</summary>
    public LengthSpec UserTokens { get; init; } = new() { Distribution = "uniform", Min = 16, Max = 64 };

    public IEnumerable<string> Validate(Scenario scenario)
    {
        if (Tenants is < 1 or > 10_000)
            yield return $"conversations.tenants: {Tenants} is not in [1, 10000]";
        if (TenantKeys is { } keys && keys.Length != Tenants)
            yield return $"conversations.tenant_keys: {keys.Length} keys for {Tenants} tenants; give one per tenant";
        if (AdaptersPerTenant < 0)
            yield return $"conversations.adapters_per_tenant: {AdaptersPerTenant} is negative";
        if (AdaptersPerTenant > 0 && (scenario.Adapters.Ids?.Length ?? scenario.Adapters.Count) < Tenants * AdaptersPerTenant)
            yield return $"conversations: {Tenants} tenants x {AdaptersPerTenant} adapters need {Tenants * AdaptersPerTenant} adapters in play; adapters.count is {scenario.Adapters.Ids?.Length ?? scenario.Adapters.Count}";
        if (SystemPromptTokens < 0)
            yield return $"conversations.system_prompt_tokens: {SystemPromptTokens} is negative";
        if (Turns < 1)
            yield return $"conversations.turns: {Turns} must be at least 1";
        if (scenario.Arrival.Mode != "closed")
            yield return "conversations: a conversation's next turn waits for its answer, so arrival.mode must be 'closed'";
        if (scenario.AutoShare > 0 || scenario.MixtureShare > 0)
            yield return "conversations: auto_share and mixture_share must be 0 (each conversation uses one tenant adapter)";
        foreach (var error in UserTokens.Validate("conversations.user_tokens", minimum: 1))
            yield return error;
    }
}
