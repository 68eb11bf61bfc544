namespace Serving.LoadTests.Scenarios;

/// <summary>
/// One load scenario, read from a JSON file (snake_case keys). Every run is bounded: by <see cref="Requests"/>, by
/// <see cref="DurationSeconds"/>, or by whichever comes first when both are set.
/// </summary>
internal sealed record Scenario
{
    /// <summary>Base address of the server, e.g. <c>http://127.0.0.1:8000</c>.</summary>
    public string Target { get; init; } = "http://127.0.0.1:8000";

    /// <summary><c>rest</c> (OpenAI completions, SSE streaming) or <c>grpc</c> (serving.v1.Generation/GenerateStream).</summary>
    public string Protocol { get; init; } = "rest";

    /// <summary>Sent as <c>Authorization: Bearer</c> when set.</summary>
    public string? ApiKey { get; init; }

    public AdapterSpec Adapters { get; init; } = new();

    public ArrivalSpec Arrival { get; init; } = new();

    public LengthSpec PromptTokens { get; init; } = new() { Distribution = "uniform", Min = 32, Max = 128 };

    public LengthSpec OutputTokens { get; init; } = new() { Distribution = "uniform", Min = 16, Max = 64 };

    /// <summary>Share of requests sent as <c>model: "auto"</c> (the server picks the adapter).</summary>
    public double AutoShare { get; init; }

    /// <summary>Share of requests that mix <see cref="MixtureSize"/> adapters over the base model.</summary>
    public double MixtureShare { get; init; }

    public int MixtureSize { get; init; } = 2;

    /// <summary>Requests to send; null = until <see cref="DurationSeconds"/>.</summary>
    public int? Requests { get; init; }

    /// <summary>Longest the run lasts; requests still running then are awaited, none is started after.</summary>
    public double? DurationSeconds { get; init; }

    /// <summary>Prompt token ids are drawn uniformly from [first, last] (inclusive); both must exist in the model's vocabulary.</summary>
    public int[] TokenIdRange { get; init; } = [100, 1000];

    /// <summary><paramref name="count"/> prompt token ids drawn uniformly from <see cref="TokenIdRange"/>.</summary>
    public int[] RandomTokens(LoadRandom random, int count)
    {
        int first = TokenIdRange[0], span = TokenIdRange[1] - first + 1;
        var tokens = new int[count];
        for (int i = 0; i < tokens.Length; i++)
            tokens[i] = first + random.Next(span);
        return tokens;
    }

    /// <summary>One request's limit; past it the request counts as an error (status "timeout").</summary>
    public double RequestTimeoutSeconds { get; init; } = 300;

    public ulong Seed { get; init; } = 1;

    /// <summary>Chat-shaped multi-turn traffic per tenant instead of independent requests; null = independent requests.</summary>
    public ConversationSpec? Conversations { get; init; }

    /// <summary>Problems with the scenario, each naming its key; empty when it can run.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (!Uri.TryCreate(Target, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
            errors.Add($"target: '{Target}' is not an http(s) address");
        if (Protocol is not ("rest" or "grpc"))
            errors.Add($"protocol: '{Protocol}' is not 'rest' or 'grpc'");
        if (Requests is null && DurationSeconds is null)
            errors.Add("requests / duration_seconds: a run must be bounded; set one or both");
        if (Requests is <= 0 or > 10_000_000)
            errors.Add($"requests: {Requests} is not in [1, 10000000]");
        if (DurationSeconds is not null && (!(DurationSeconds > 0) || DurationSeconds > 86_400))
            errors.Add($"duration_seconds: {DurationSeconds} is not in (0, 86400]");
        if (!(AutoShare is >= 0 and <= 1) || !(MixtureShare is >= 0 and <= 1) || AutoShare + MixtureShare > 1)
            errors.Add($"auto_share + mixture_share: {AutoShare} + {MixtureShare} must be shares in [0, 1] summing to at most 1");
        if (MixtureShare > 0 && MixtureSize < 2)
            errors.Add($"mixture_size: {MixtureSize} must be at least 2");
        if (TokenIdRange is not [var lo, var hi] || lo < 0 || hi < lo)
            errors.Add("token_id_range: must be [first, last] with 0 <= first <= last");
        if (!(RequestTimeoutSeconds > 0))
            errors.Add($"request_timeout_seconds: {RequestTimeoutSeconds} must be positive");
        errors.AddRange(Adapters.Validate(this));
        errors.AddRange(Arrival.Validate());
        errors.AddRange(PromptTokens.Validate("prompt_tokens", minimum: 1));
        errors.AddRange(OutputTokens.Validate("output_tokens", minimum: 1));
        if (Conversations is { } conversations)
            errors.AddRange(conversations.Validate(this));
        return errors;
    }
}
