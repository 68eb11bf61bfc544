using Microsoft.Extensions.Options;
using Serving.Runtime;
using Serving.Runtime.Generation;
using Serving.Runtime.Hosting;
using Serving.Runtime.Routing;
using Serving.Server.Api;
using Serving.Server.Security;
using Serving.Contracts.Generation;

namespace Serving.Server.Requests;

/// <summary>
/// The one request stage of every front door (REST completions and chat, gRPC): after the front door has parsed its own
/// message, this turns it into the runtime's <see cref="GenerationRequest"/>s. It resolves the model and adapters once
/// (pinning their versions), tokenizes on the served model's tokenizer, checks each prompt against the vocabulary and the
/// context limit, completes the sampling parameters, and routes <c>model: "auto"</c> prompts. Errors are
/// <see cref="ApiException"/>s naming the field.
/// </summary>
internal sealed class GenerationRequestStage(ModelHost host, IOptions<ModelOptions> options, AdapterRouter router, GenerationClient generator,
    IOptions<Runtime.Speculation.SpeculationOptions> speculation)
{
    /// <summary>The served model (tokenizer, chat template, generation defaults).</summary>
    public ServedModel Model => host.Served;

    /// <summary>Longest prompt + completion: the configured context, capped by the model's positions.</summary>
    public int MaxContext => Math.Min(options.Value.MaxContext, host.Served.MaxPositions);

    /// <summary>The most log-probabilities a request may ask for per token (<c>--max-logprobs</c>).</summary>
    public int MaxLogprobs => options.Value.MaxLogprobs;

    /// <summary>The base model's id, which <c>model</c> names to run without adapters.</summary>
    public string ModelId => host.ModelId;

    /// <summary>Whether <paramref name="model"/> asks the server to route: <c>auto</c> always does (the name is reserved for it).</summary>
    public static bool IsAuto(string? model) => model == AdapterRouter.AutoModel;

    /// <summary>
    /// <paramref name="model"/> names the base model or an adapter (which then runs at weight 1); <paramref name="mix"/> mixes
    /// several adapters over the base model. Unknown names are 404, another tenant's adapter 403.
    /// </summary>
    public PinnedAdapters Resolve(string model, IReadOnlyList<(string Id, double Weight)> mix, Caller caller) => ModelResolver.Resolve(model, mix, host, caller);

    /// <summary>vLLM's <c>cache_salt</c>: absent, or a non-empty string of at most 256 characters.</summary>
    public static string? ReadCacheSalt(JsonFields f) => CheckCacheSalt(f.Get("cache_salt") switch
    {
        null or { ValueKind: System.Text.Json.JsonValueKind.Null } => null,
        { ValueKind: System.Text.Json.JsonValueKind.String } s => s.GetString(),
        _ => throw JsonFields.Bad("cache_salt", "must be a string"),
    });

    /// <summary>The salt as given, or a 400 naming <c>cache_salt</c>.</summary>
    public static string? CheckCacheSalt(string? salt) => salt switch
    {
        null => null,
        "" => throw JsonFields.Bad("cache_salt", "must not be empty"),
        { Length: > 256 } => throw JsonFields.Bad("cache_salt", "must be at most 256 characters"),
        _ => salt,
    };

    /// <summary>
    /// vLLM's <c>priority</c> (lower is more urgent; absent: 0): any value needs priority scheduling but 0, which every
    /// server accepts as vLLM's does, and a caller may not ask for more urgency than its key allows (403) — a tenant's
    /// own key cannot put it ahead of other tenants.
    /// </summary>
    public int CheckPriority(int? priority, Caller caller)
    {
        if (priority is not int p || p == 0)
            return 0;
        if (!generator.SchedulesByPriority)
            throw JsonFields.Bad("priority", "needs priority scheduling; this server schedules first come, first served (start it with --scheduling-policy priority)");
        if (p < caller.PriorityFloor)
            throw new ApiException(403, $"'priority' {p} is more urgent than this API key may ask for (at most {caller.PriorityFloor})", "priority");
        return p;
    }

    /// <summary>
    /// A predicted output (<see cref="PredictionReader"/>) as token ids, without the tokenizer's specials; null for none or an
    /// empty one. Longer than the server's <c>Serving:Speculation:MaxPredictionTokens</c>: a 400, found before the rest is read.
    /// </summary>
    public int[]? TokenizePrediction(string? text, string field = "prediction.content")
    {
        if (string.IsNullOrEmpty(text))
            return null;
        int most = speculation.Value.MaxPredictionTokens;
        try
        {
            return host.Served.EncodeWithin(text, false, most)
                ?? throw ApiException.BadRequest($"'{field}' is longer than the {most} tokens this server accepts", field);
        }
        catch (PromptTextException ex)
        {
            throw ApiException.BadRequest(ex.Message, field);
        }
    }

    /// <summary><paramref name="text"/> as token ids; a tokenizer error is a 400 naming <paramref name="field"/>.</summary>
    public int[] Tokenize(string text, bool addSpecialTokens, string field) => Tokenize(text, addSpecialTokens, field, int.MaxValue);

    /// <summary>
    /// A prompt to generate from as token ids: <see cref="Tokenize(string, bool, string)"/>, but a 400 as soon as the text
    /// certainly fills the context, before the rest of it is tokenized (a 10 MB body would otherwise cost seconds of a core
    /// to be refused).
    /// </summary>
    public int[] TokenizePrompt(string text, bool addSpecialTokens, string field) => Tokenize(text, addSpecialTokens, field, MaxContext - 1);

    /// <summary><see cref="TokenizePrompt(string, bool, string)"/>, or with <paramref name="truncation"/> the prompt's last tokens.</summary>
    public int[] TokenizePrompt(string text, bool addSpecialTokens, string field, PromptTruncation? truncation)
    {
        if (truncation is null)
            return TokenizePrompt(text, addSpecialTokens, field);
        try
        {
            return truncation.Tokenize(host.Served, text, addSpecialTokens, field);
        }
        catch (PromptTextException ex)
        {
            throw ApiException.BadRequest(ex.Message, field);
        }
    }

    private int[] Tokenize(string text, bool addSpecialTokens, string field, int maxTokens)
    {
        try
        {
            return host.Served.EncodeWithin(text, addSpecialTokens, maxTokens)
                ?? throw ApiException.BadRequest($"This model's maximum context length is {MaxContext} tokens; the prompt is longer.", field);
        }
        catch (PromptTextException ex)
        {
            throw ApiException.BadRequest(ex.Message, field);
        }
    }

    /// <summary>
    /// Compiles <paramref name="constraint"/> now, before the request queues (waiting its turn among cold builds), so a cold
    /// schema never stalls the engine loop and an unsupported one is a 400 naming the full path:
    /// <c>response_format.json_schema.schema.properties.dose.not</c>.
    /// </summary>
    private async Task CompileAsync(OutputConstraint constraint, string field, string tenant, string? cacheSalt, CancellationToken ct)
    {
        try
        {
            await host.Served.CompileAsync(constraint, tenant, cacheSalt, ct);
        }
        catch (RequestFailedException ex) when (ex.Failure == RequestFailure.Invalid)
        {
            string at = ex.Param ?? "";
            string root = field.Split('.')[0];
            string path = at.StartsWith('$') ? field + at[1..]
                : at.StartsWith("whitespace_pattern", StringComparison.Ordinal)
                    ? (root.StartsWith("structured_output", StringComparison.Ordinal) ? root + "." : "guided_") + at
                : at.StartsWith("regex", StringComparison.Ordinal) ? field + at["regex".Length..]
                : at.StartsWith("choice", StringComparison.Ordinal) ? field + at["choice".Length..]
                : at.StartsWith("grammar", StringComparison.Ordinal) ? field + at["grammar".Length..]
                : at.StartsWith("structural_tag", StringComparison.Ordinal) ? field + at["structural_tag".Length..]
                : field;
            throw ApiException.BadRequest($"'{path}': {ex.Message}", path);
        }
    }

    /// <summary>
    /// One request per prompt: every prompt is checked against the vocabulary and the context limit first (a
    /// <c>max_tokens</c> of 0 becomes what the context leaves), then each runs with <paramref name="adapters"/>, or when
    /// that is null (<c>model: "auto"</c>) with the adapters routed for it.
    /// </summary>
    /// <param name="prompts">Tokenized prompts.</param>
    /// <param name="sampling">The front door's sampling parameters, validated.</param>
    /// <param name="adapters">Pinned by <see cref="Resolve"/>; null routes each prompt with <paramref name="routing"/>.</param>
    /// <param name="routing">The auto request's routing options.</param>
    /// <param name="caller">Whose request it is: its tenant, and the adapters routing may choose.</param>
    /// <param name="deadline">When it must end at the latest.</param>
    /// <param name="ct">The caller going away.</param>
    /// <param name="cacheSalt">The request's <c>cache_salt</c>: prefix-cache blocks are shared only within it.</param>
    /// <param name="priority">Checked by <see cref="CheckPriority"/>.</param>
    /// <param name="prediction">The predicted output's tokens (<see cref="TokenizePrediction"/>), drafted from for every prompt and choice.</param>
    /// <param name="constraintField">The request field <see cref="SamplingParams.Constraint"/> came from, which a 400 for a
    /// schema or pattern the server cannot enforce names, with the path inside it.</param>
    /// <param name="promptField">The request field the prompts came from, which a 400 for one of them names.</param>
    public async Task<IReadOnlyList<GenerationRequest>> PrepareAsync(IReadOnlyList<IReadOnlyList<int>> prompts, SamplingParams sampling, PinnedAdapters? adapters,
        RoutingRequest? routing, Caller caller, DateTimeOffset? deadline, CancellationToken ct, string? cacheSalt = null, string constraintField = "structured_outputs",
        int priority = 0, IReadOnlyList<int>? prediction = null, string promptField = "prompt")
    {
        if (host.Served.EmbeddingOnly && !sampling.EmbedPrompt)
            throw ApiException.BadRequest($"this model is an embedding model (a bare {host.Served.Architecture.Replace("ForCausalLM", "Model", StringComparison.Ordinal)} "
                + "without a language-model head): it serves /v1/embeddings only", "model");
        if (sampling.Constraint is { } constraint)
            await CompileAsync(constraint, constraintField, caller.Tenant, cacheSalt, ct);
        int context = MaxContext, vocabulary = host.Served.VocabularySize;
        sampling = PromptLimits.CheckTokenIds(sampling, vocabulary);
        int? maxNewTokens = host.Served.GenerationDefaults.MaxNewTokens;
        var perPrompt = prompts.Select(p => PromptLimits.Apply(p, sampling, context, vocabulary, promptField, maxNewTokens)).ToList();
        var pinned = adapters is not null
            ? prompts.Select(_ => adapters).ToArray()
            : await Task.WhenAll(prompts.Select(p => router.RouteAsync(p, caller.CanUse, routing?.Candidates, routing?.TopK, routing?.Temperature, ct, routing?.Method)));
        return prompts.Select((p, i) => new GenerationRequest(p, perPrompt[i], pinned[i], caller.Tenant, deadline, cacheSalt, priority, prediction)).ToList();
    }

    /// <summary>
    /// <paramref name="choices"/> requests for each of <paramref name="requests"/>, in that order (OpenAI's <c>n</c>;
    /// choice index = prompt × n + copy). A seeded request's copies take seeds seed, seed + 1, …, so each choice is
    /// reproducible and they differ.
    /// </summary>
    public static IReadOnlyList<GenerationRequest> Copies(IReadOnlyList<GenerationRequest> requests, int choices)
    {
        if (choices == 1)
            return requests;
        if (requests.Count * choices > SamplingRequestReader.MaxChoices * 4)
            throw JsonFields.Bad("n", $"times the number of prompts may be at most {SamplingRequestReader.MaxChoices * 4}, got {requests.Count * choices}");
        return requests.SelectMany(r => Enumerable.Range(0, choices).Select(copy => r.Sampling.Seed is ulong seed
            ? r with { Sampling = r.Sampling with { Seed = unchecked(seed + (ulong)copy) } }
            : r)).ToList();
    }
}
