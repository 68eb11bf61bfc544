using System.Text.Json.Nodes;
using Serving.Runtime.Generation;
using Serving.Runtime.Hosting;
using Serving.Server.Requests;
using Serving.Contracts.Generation;

namespace Serving.Server.Api.OpenAi;

/// <summary><c>POST /v1/completions</c> (OpenAI shape, vLLM extensions), streaming or not.</summary>
internal sealed class CompletionsEndpoint(GenerationRequestStage stage, GenerationClient client, Microsoft.Extensions.Options.IOptions<ChatOptions> options)
{
    public async Task HandleAsync(HttpContext ctx)
    {
        var ct = ctx.RequestAborted;
        using var doc = await RequestBody.ReadAsync(ctx.Request, ct);
        var f = new JsonFields(doc.RootElement);
        var model = stage.Model;
        var caller = Security.AuthenticationMiddleware.CallerOf(ctx);
        var (adapters, routing, modelName) = ModelResolver.ReadTarget(f, stage, caller);
        bool auto = adapters is null;
        UnsupportedFields.Refuse(f, chat: false);
        int? logprobs = f.Int("logprobs", 0, stage.MaxLogprobs);
        var sampling = SamplingRequestReader.Read(f, model.GenerationDefaults, logprobs, SamplingRequestReader.DefaultMaxTokens);
        var format = OutputConstraintReader.Read(f);
        // OpenAI's echo: the prompt leads the text, and with logprobs the prompt's tokens lead them (so they are scored).
        bool echo = f.Bool("echo") ?? false;
        int? promptLogprobs = f.Int("prompt_logprobs", 0, stage.MaxLogprobs);
        int? scoredTop = echo && logprobs is int top ? Math.Max(top, promptLogprobs ?? 0) : promptLogprobs;
        sampling = sampling with { Constraint = format?.Constraint, PromptLogprobs = scoredTop, BadWords = BadWordsReader.Read(f, model) };
        bool addSpecialTokens = f.Bool("add_special_tokens") ?? true;        // vLLM's: the tokenizer's BOS/EOS around prompt strings
        var truncation = PromptTruncation.Read(f, stage.MaxContext, sampling.MaxTokens);
        var prompts = CompletionPromptReader.Read(f, text => stage.TokenizePrompt(text, addSpecialTokens, "prompt", truncation));
        if (truncation is not null)
            prompts = prompts.Select(truncation.Apply).ToList();
        var echoed = echo ? CompletionPromptReader.Texts(f).Select((text, i) => truncation is null ? text ?? model.Decode(prompts[i], skipSpecialTokens: false)
            : model.Decode(prompts[i], skipSpecialTokens: false)).ToList() : null;

        int n = SamplingRequestReader.ReadChoiceCount(f);
        var beams = BeamSearchRequest.Read(f, sampling, n, echo ? ["echo"] : []);
        var requests = GenerationRequestStage.Copies(await stage.PrepareAsync(prompts, sampling, adapters, routing, caller, null, ct,
            GenerationRequestStage.ReadCacheSalt(f), format?.Field ?? "structured_outputs", stage.CheckPriority(f.Int("priority", int.MinValue, int.MaxValue), caller),
            stage.TokenizePrediction(PredictionReader.Read(f))), n);
        bool stream = f.Bool("stream") ?? false;
        var usage = StreamUsage.Read(f);
        bool returnIds = f.Bool("return_token_ids") ?? false;
        var names = new LogprobTokens(model, f.Bool("return_tokens_as_token_ids") ?? options.Value.ReturnTokensAsTokenIds);
        string id = "cmpl-" + Guid.NewGuid().ToString("N");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var results = requests.Select((r, i) => new ChoiceResult(i, r.PromptTokens.Count, firstOfPrompt: i % n == 0)).ToList();
        var sources = beams is null ? requests.Select(r => client.SubmitAsync(r, ct)).ToList() : BeamSearch.Sources(client, requests, beams, model, ct);
        // The echoed prompt's part of a choice's logprobs, from its first event's prompt scores.
        JsonObject Echoed(ChoiceResult r) => LogprobsFormatter.EchoedPrompt(requests[r.Index].PromptTokens, r.Events[0].PromptLogprobs!, names);

        if (!stream)
        {
            await Task.WhenAll(results.Select(r => RunAsync(r, sources[r.Index], null)));
            var choices = new JsonArray(results.Select(r =>
            {
                string lead = echoed?[r.Index / n] ?? "";
                var lp = logprobs is null ? null : LogprobsFormatter.Completion(r.Events, names, lead.Length);
                var choice = Choice(r, lead + r.Text, echo && lp is not null ? LogprobsFormatter.Concat(Echoed(r), lp) : lp,
                    ChoiceResult.FinishName(r.Finish), returnIds ? r.TokenIds : null, r.Events.Count > 0 ? ChoiceResult.IncompleteDetails(r.Events[^1]) : null);
                if (promptLogprobs is not null)
                    choice["prompt_logprobs"] = LogprobsFormatter.Prompt(r.Events[0].PromptLogprobs!, model);
                return (JsonNode)choice;
            }).ToArray());
            if (auto)
                foreach (var r in results)
                    ((JsonObject)choices[r.Index]!)["adapters"] = ModelResolver.Describe(requests[r.Index].Adapters);
            var body = Envelope(id, created, modelName, choices);
            body["usage"] = Usage(results);
            if (returnIds)
                body["prompt_token_ids"] = prompts.Count == 1 ? Ids(prompts[0]) : new JsonArray(prompts.Select(p => (JsonNode)Ids(p)).ToArray());
            await Results.Json(body).ExecuteAsync(ctx);
            return;
        }

        var sse = new ServerSentEvents(ctx.Response);
        sse.Start();
        var named = new bool[results.Count];     // with model "auto", each choice's first event names the mix it runs
        try
        {
            await Task.WhenAll(results.Select(r => RunAsync(r, sources[r.Index], async (e, offset) =>
            {
                string lead = echoed?[r.Index / n] ?? "";
                if (echo && r.Events.Count == 1)
                {
                    // The echoed prompt goes first, in a chunk of its own, once its scores are known (with the first token).
                    var prompt = Choice(r, lead, logprobs is null ? null : Echoed(r), null, null, null);
                    await sse.SendAsync(Envelope(id, created, modelName, new JsonArray(prompt)), ct);
                }

                var lp = logprobs is null ? null : LogprobsFormatter.Completion([e], names, lead.Length + offset);
                var choice = Choice(r, e.TextDelta, lp, ChoiceResult.FinishName(e.Finish), returnIds ? [e.Token.Id] : null, ChoiceResult.IncompleteDetails(e));
                if (promptLogprobs is not null && e.PromptLogprobs is { } scores)
                    choice["prompt_logprobs"] = LogprobsFormatter.Prompt(scores, model);
                if (auto && !named[r.Index])
                {
                    named[r.Index] = true;
                    choice["adapters"] = ModelResolver.Describe(requests[r.Index].Adapters);
                }

                var chunk = Envelope(id, created, modelName, new JsonArray(choice));
                await sse.SendAsync(chunk, ct, completeInTurn: usage.EveryChunk ? c => c["usage"] = Usage(results) : null);
            })));
            if (usage.AtEnd)
            {
                var last = Envelope(id, created, modelName, []);
                last["usage"] = Usage(results);
                await sse.SendAsync(last, ct);
            }
        }
        catch (Exception error) when (ApiException.Of(error) is ApiException ex && ctx.Response.HasStarted)
        {
            // Before the first byte the error gets its own status (429 when the queue is full, 404, 503...), as a client
            // retrying on 429 expects; once events have gone out it can only be the stream's last event.
            await sse.SendAsync(ApiErrorWriter.Body(ex), ct);
        }

        await sse.DoneAsync(ct);
    }

    private static async Task RunAsync(ChoiceResult result, IAsyncEnumerable<TokenEvent> source, Func<TokenEvent, int, Task>? onToken)
    {
        await foreach (var e in source)
        {
            int offset = result.Text.Length;
            result.Add(e);
            if (onToken is not null)
                await onToken(e, offset);
        }
    }

    private static JsonObject Envelope(string id, long created, string modelName, JsonArray choices) => new()
    {
        ["id"] = id,
        ["object"] = "text_completion",
        ["created"] = created,
        ["model"] = modelName,
        ["choices"] = choices,
    };

    private static JsonObject Choice(ChoiceResult r, string text, JsonObject? logprobs, string? finish, IReadOnlyList<int>? tokenIds, JsonObject? incomplete)
    {
        var choice = new JsonObject { ["index"] = r.Index, ["text"] = text, ["logprobs"] = logprobs, ["finish_reason"] = finish };
        if (tokenIds is not null)
            choice["token_ids"] = Ids(tokenIds);
        if (incomplete is not null)
            choice["incomplete_details"] = incomplete;
        return choice;
    }

    internal static JsonArray Ids(IReadOnlyList<int> ids) => new(ids.Select(i => (JsonNode)i).ToArray());

    internal static JsonObject Usage(IReadOnlyList<ChoiceResult> results)
    {
        // A prompt counts once however many choices it has (OpenAI's and vLLM's usage); its cached tokens are its first choice's.
        int prompt = results.Where(r => r.FirstOfPrompt).Sum(r => r.PromptTokens), completion = results.Sum(r => r.TokenIds.Count);
        var usage = new JsonObject
        {
            ["prompt_tokens"] = prompt, ["completion_tokens"] = completion, ["total_tokens"] = prompt + completion,
            ["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = results.Where(r => r.FirstOfPrompt).Sum(r => r.CachedTokens) },
        };
        // OpenAI's Predicted Outputs tally, once every choice has ended with its own.
        if (results.Any(r => r.Prediction is not null))
            usage["completion_tokens_details"] = new JsonObject
            {
                ["accepted_prediction_tokens"] = results.Sum(r => r.Prediction?.Accepted ?? 0),
                ["rejected_prediction_tokens"] = results.Sum(r => r.Prediction?.Rejected ?? 0),
            };
        return usage;
    }
}
