using Grpc.Core;
using Serving.Runtime.Generation;
using Serving.Runtime.Hosting;
using Serving.Server.Requests;
using Serving.V1;
using Serving.Contracts.Generation;

namespace Serving.Server.Api.Grpc;

/// <summary>
/// <c>serving.v1.Generation</c>: the same generation as the REST endpoints (same validation, same scheduler), unary and
/// server-streaming. A gRPC deadline becomes the request's deadline in the scheduler; a cancelled call leaves the batch.
/// </summary>
internal sealed class GenerationService(ModelHost host, GenerationRequestStage stage, GenerationClient client, PromptEmbedder embedder)
    : V1.Generation.GenerationBase
{
    /// <summary>REST's <c>/v1/embeddings</c> over gRPC: the same <see cref="PromptEmbedder"/>, adapters named or mixed as for <see cref="Generate"/>.</summary>
    public override async Task<EmbedResponse> Embed(EmbedRequest request, ServerCallContext context)
    {
        var caller = Security.AuthenticationMiddleware.CallerOf(context.GetHttpContext());
        bool auto = GenerationRequestStage.IsAuto(request.Model);
        if (auto && request.Adapters.Count > 0)
            throw ApiException.BadRequest("cannot be combined with model 'auto'", "adapters");
        var pinned = auto ? null : stage.Resolve(request.Model, request.Adapters.Select(a => (a.Id, (double)a.Weight)).ToList(), caller);
        if (request.Inputs.Count is 0 or > PromptEmbedder.MaxInputs)
            throw ApiException.BadRequest($"must hold from 1 to {PromptEmbedder.MaxInputs} inputs, got {request.Inputs.Count}", "inputs");
        bool special = !request.HasAddSpecialTokens || request.AddSpecialTokens;
        var inputs = request.Inputs.Select(text => (IReadOnlyList<int>)stage.TokenizePrompt(text, special, "inputs")).ToList();
        var vectors = await embedder.EmbedAsync(inputs, pinned, auto ? new RoutingRequest(null, null, null, null) : null, caller, Deadline(context),
            GenerationRequestStage.CheckCacheSalt(request.HasCacheSalt ? request.CacheSalt : null), stage.CheckPriority(request.HasPriority ? request.Priority : null, caller),
            request.HasDimensions ? request.Dimensions : null, request.HasNormalize ? request.Normalize : embedder.NormalizesByDefault, context.CancellationToken, "inputs");
        var response = new EmbedResponse { Model = request.Model, PromptTokens = inputs.Sum(p => p.Count) };
        foreach (var vector in vectors)
            response.Embeddings.Add(new Embedding { Values = { vector } });
        return response;
    }

    public override async Task<GenerateResponse> Generate(GenerateRequest request, ServerCallContext context)
    {
        var caller = Security.AuthenticationMiddleware.CallerOf(context.GetHttpContext());
        var prepared = await PrepareAsync(request, caller, Deadline(context), context.CancellationToken);
        var (prompt, mix) = (prepared.PromptTokens, prepared.Adapters);
        var result = new ChoiceResult(0, prompt.Count);
        await foreach (var e in client.SubmitAsync(prepared, context.CancellationToken))
            result.Add(e);
        var response = new GenerateResponse
        {
            Model = request.Model,
            Text = result.Text.ToString(),
            FinishReason = ChoiceResult.FinishName(result.Finish) ?? "",
            Usage = Usage(prompt.Count, result.TokenIds.Count, result.CachedTokens, result.Prediction),
            OutputIncomplete = result.OutputIncomplete,
        };
        response.TokenIds.AddRange(result.TokenIds);
        response.Adapters.AddRange(Weights(mix));
        return response;
    }

    public override async Task GenerateStream(GenerateRequest request, IServerStreamWriter<GenerateStreamResponse> responseStream, ServerCallContext context)
    {
        var caller = Security.AuthenticationMiddleware.CallerOf(context.GetHttpContext());
        var prepared = await PrepareAsync(request, caller, Deadline(context), context.CancellationToken);
        var (prompt, mix) = (prepared.PromptTokens, prepared.Adapters);
        int generated = 0, cached = 0;
        bool first = true;
        await foreach (var e in client.SubmitAsync(prepared, context.CancellationToken))
        {
            generated++;
            if (first)
                cached = e.CachedPromptTokens;
            var message = new GenerateStreamResponse { Model = request.Model, Text = e.TextDelta };
            message.TokenIds.Add(e.Token.Id);
            if (first)
                message.Adapters.AddRange(Weights(mix));
            if (e.Finish != FinishReason.None)
            {
                message.FinishReason = ChoiceResult.FinishName(e.Finish) ?? "";
                message.Usage = Usage(prompt.Count, generated, cached, e.Prediction);
                message.OutputIncomplete = e.OutputIncomplete;
            }

            first = false;
            await responseStream.WriteAsync(message, context.CancellationToken);
        }
    }

    public override Task<TokenizeResponse> Tokenize(TokenizeRequest request, ServerCallContext context)
    {
        CheckModel(request.Model, context);
        var model = stage.Model;
        int[] ids = stage.Tokenize(request.Prompt, request.HasAddSpecialTokens ? request.AddSpecialTokens : true, "prompt");
        var response = new TokenizeResponse { Count = ids.Length, MaxModelLen = stage.MaxContext };
        response.Tokens.AddRange(ids);
        if (request.ReturnTokenStrs)
            response.TokenStrs.AddRange(ids.Select(i => model.TokenString(i) ?? ""));
        return Task.FromResult(response);
    }

    public override Task<DetokenizeResponse> Detokenize(DetokenizeRequest request, ServerCallContext context)
    {
        CheckModel(request.Model, context);
        var model = host.Served;
        if (request.Tokens.Select(id => (int?)id).FirstOrDefault(id => model.TokenString(id!.Value) is null) is int bad)
            throw ApiException.BadRequest($"{bad} is not a token id of this model's vocabulary", "tokens");
        return Task.FromResult(new DetokenizeResponse { Prompt = model.Decode(request.Tokens, skipSpecialTokens: false) });
    }

    private void CheckModel(string model, ServerCallContext context)
    {
        if (!GenerationRequestStage.IsAuto(model))
            ModelResolver.Resolve(model, [], host, Security.AuthenticationMiddleware.CallerOf(context.GetHttpContext()));
    }

    /// <summary>The message as the runtime's request, through the same stage as the REST endpoints.</summary>
    private async Task<GenerationRequest> PrepareAsync(GenerateRequest r, Security.Caller caller, DateTimeOffset? deadline, CancellationToken ct)
    {
        var model = stage.Model;
        bool auto = GenerationRequestStage.IsAuto(r.Model);
        if (auto && r.Adapters.Count > 0)
            throw ApiException.BadRequest("cannot be combined with model 'auto' (name candidates in routing_candidates)", "adapters");
        var pinned = auto ? null : stage.Resolve(r.Model, r.Adapters.Select(a => (a.Id, (double)a.Weight)).ToList(), caller);
        bool hasText = r.Prompt.Length > 0, hasIds = r.PromptTokenIds.Count > 0;
        if (hasText == hasIds)
            throw ApiException.BadRequest("exactly one of prompt and prompt_token_ids is required", "prompt");
        var truncation = PromptTruncation.Create(r.HasTruncatePromptTokens ? r.TruncatePromptTokens : null, stage.MaxContext,
            r.HasMaxTokens ? r.MaxTokens : SamplingRequestReader.DefaultMaxTokens);
        IReadOnlyList<int> prompt = hasText ? stage.TokenizePrompt(r.Prompt, !r.HasAddSpecialTokens || r.AddSpecialTokens, "prompt", truncation)
            : truncation is null ? r.PromptTokenIds.ToArray() : truncation.Apply(r.PromptTokenIds.ToArray());

        var defaults = model.GenerationDefaults;
        if (r.HasMaxTokens && r.MaxTokens < 1)
            throw ApiException.BadRequest("must be at least 1", "max_tokens");
        if (r.HasTopK && r.TopK < -1)
            throw ApiException.BadRequest("must be -1, 0 (disabled) or positive", "top_k");
        if (r.AllowedTokenIds.Count > SamplingRequestReader.MaxAllowedTokenIds)
            throw ApiException.BadRequest($"at most {SamplingRequestReader.MaxAllowedTokenIds} ids", "allowed_token_ids");
        if (r.Stop.Count > 16 || r.Stop.Any(string.IsNullOrEmpty))
            throw ApiException.BadRequest("at most 16 non-empty stop strings", "stop");
        var sampling = new SamplingParams
        {
            Temperature = r.HasTemperature ? r.Temperature : defaults.Temperature ?? 1.0,
            TopP = r.HasTopP ? r.TopP : defaults.TopP ?? 1.0,
            TopK = Math.Max(0, r.HasTopK ? r.TopK : defaults.TopK ?? 0),
            Seed = r.HasSeed ? r.Seed : null,
            MaxTokens = r.HasMaxTokens ? r.MaxTokens : SamplingRequestReader.DefaultMaxTokens,
            StopStrings = [.. r.Stop],
            IgnoreEos = r.IgnoreEos,
            Constraint = Constraint(r.StructuredOutput),
            LogitBias = new Dictionary<int, float>(r.LogitBias),
            PresencePenalty = r.HasPresencePenalty ? r.PresencePenalty : 0,
            FrequencyPenalty = r.HasFrequencyPenalty ? r.FrequencyPenalty : 0,
            RepetitionPenalty = r.HasRepetitionPenalty ? r.RepetitionPenalty : (float)(defaults.RepetitionPenalty ?? 1),
            MinP = r.HasMinP ? r.MinP : defaults.MinP ?? 0,
            MinTokens = r.HasMinTokens ? r.MinTokens : 0,
            AllowedTokenIds = r.AllowedTokenIds.Count > 0 ? [.. r.AllowedTokenIds] : null,
            SkipSpecialTokens = !r.HasSkipSpecialTokens || r.SkipSpecialTokens,
            IncludeStopStringInOutput = r.IncludeStopStrInOutput,
            BadWords = BadWordsReader.Tokenize(r.BadWords, model),
        };
        try
        {
            sampling.Validate();
        }
        catch (ArgumentException ex)
        {
            throw ApiException.BadRequest(ex.Message);
        }

        var routing = auto
            ? new RoutingRequest(r.RoutingCandidates.Count > 0 ? r.RoutingCandidates : null, r.HasRoutingTopK ? r.RoutingTopK : null,
                r.HasRoutingTemperature ? r.RoutingTemperature : null, null)
            : null;
        string? salt = GenerationRequestStage.CheckCacheSalt(r.HasCacheSalt ? r.CacheSalt : null);
        return (await stage.PrepareAsync([prompt], sampling, pinned, routing, caller, deadline, ct, salt, StructuredOutputField(r.StructuredOutput),
            stage.CheckPriority(r.HasPriority ? r.Priority : null, caller), stage.TokenizePrediction(r.HasPrediction ? r.Prediction : null, "prediction")))[0];
    }

    private static OutputConstraint? Constraint(StructuredOutput? s)
    {
        var constraint = Kind(s);
        if (s is null || !s.HasWhitespacePattern)
            return constraint;
        return constraint is null
            ? throw ApiException.BadRequest("needs a JSON output format", "structured_output.whitespace_pattern")
            : constraint with { WhitespacePattern = s.WhitespacePattern };
    }

    private static OutputConstraint? Kind(StructuredOutput? s) => s?.KindCase switch
    {
        null or StructuredOutput.KindOneofCase.None => null,
        StructuredOutput.KindOneofCase.JsonSchema => OutputConstraint.JsonSchema(s.JsonSchema),
        StructuredOutput.KindOneofCase.JsonObject => s.JsonObject ? OutputConstraint.JsonObject() : null,
        StructuredOutput.KindOneofCase.Regex => OutputConstraint.Regex(s.Regex),
        StructuredOutput.KindOneofCase.Grammar => s.Grammar.Length > 0 ? OutputConstraint.Grammar(s.Grammar)
            : throw ApiException.BadRequest("must be a non-empty GBNF grammar", "structured_output.grammar"),
        _ => s.Choice.Values.Count is > 0 and <= OutputConstraintReader.MaxChoices
            ? OutputConstraint.Choice([.. s.Choice.Values])
            : throw ApiException.BadRequest($"must hold 1 to {OutputConstraintReader.MaxChoices} strings", "structured_output.choice.values"),
    };

    private static string StructuredOutputField(StructuredOutput? s) => s?.KindCase switch
    {
        StructuredOutput.KindOneofCase.JsonSchema => "structured_output.json_schema",
        StructuredOutput.KindOneofCase.Regex => "structured_output.regex",
        StructuredOutput.KindOneofCase.Choice => "structured_output.choice.values",
        StructuredOutput.KindOneofCase.Grammar => "structured_output.grammar",
        _ => "structured_output",
    };

    private static DateTimeOffset? Deadline(ServerCallContext context) =>
        context.Deadline == DateTime.MaxValue ? null : new DateTimeOffset(DateTime.SpecifyKind(context.Deadline, DateTimeKind.Utc));

    private static Usage Usage(int prompt, int completion, int cached, PredictionTokens? prediction) =>
        new()
        {
            PromptTokens = prompt, CompletionTokens = completion, TotalTokens = prompt + completion, CachedPromptTokens = cached,
            AcceptedPredictionTokens = prediction?.Accepted ?? 0, RejectedPredictionTokens = prediction?.Rejected ?? 0,
        };

    private static IEnumerable<AdapterWeight> Weights(PinnedAdapters adapters) =>
        adapters.Mix.Entries.Select(e => new AdapterWeight { Id = e.Id.Value, Weight = e.Weight });
}
