using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Serving.Runtime.Generation;
using Serving.Server.Requests;

namespace Serving.Server.Api.OpenAi;

/// <summary>
/// <c>POST /v1/chat/completions</c>: messages rendered with the model's chat template, then generated like a completion.
/// The text is read into reasoning, content and tool calls (<see cref="ChatTextReader"/>): forced calls
/// (<c>tool_choice</c> <c>required</c> or a named function) through an output constraint, the model's own through the
/// configured tool-call parser, reasoning through the configured reasoning parser.
/// </summary>
internal sealed class ChatCompletionsEndpoint(GenerationRequestStage stage, GenerationClient client, TimeProvider time, IOptions<ChatOptions> options)
{
    public async Task HandleAsync(HttpContext ctx)
    {
        var ct = ctx.RequestAborted;
        using var doc = await RequestBody.ReadAsync(ctx.Request, ct);
        var f = new JsonFields(doc.RootElement);
        var run = await ChatRun.StartAsync(f, ctx, stage, client, time, options.Value);
        var (model, modelName, auto, prompt, adapters, choices, sources) = (run.Model, run.ModelName, run.Auto, run.Prompt, run.Adapters, run.Choices, run.Sources);
        var (topLogprobs, promptLogprobs, names, returnIds, echoed) = (run.TopLogprobs, run.PromptLogprobs, run.Names, run.ReturnIds, run.Echoed);
        var results = run.Results;
        string id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        if (f.Bool("stream") != true)
        {
            await Task.WhenAll(choices.Select(async (c, i) =>
            {
                await foreach (var e in sources[i])
                    c.Result.Add(e);
            }));
            var body = new JsonObject
            {
                ["id"] = id,
                ["object"] = "chat.completion",
                ["created"] = created,
                ["model"] = modelName,
                ["choices"] = new JsonArray(choices.Select(c => (JsonNode)c.Whole(topLogprobs is null ? null : LogprobsFormatter.Chat(c.Result.Events, names), returnIds, echoed)).ToArray()),
            };
            if (auto)
                body["adapters"] = ModelResolver.Describe(adapters);
            body["usage"] = CompletionsEndpoint.Usage(results);
            if (returnIds)
                body["prompt_token_ids"] = CompletionsEndpoint.Ids(prompt);
            if (promptLogprobs is not null)
                body["prompt_logprobs"] = LogprobsFormatter.Prompt(results[0].Events[0].PromptLogprobs!, model);
            await Results.Json(body).ExecuteAsync(ctx);
            return;
        }

        var usage = StreamUsage.Read(f);
        var sse = new ServerSentEvents(ctx.Response);
        sse.Start();
        var streams = sources.Select(s => s.GetAsyncEnumerator(ct)).ToList();
        try
        {
            // The first MoveNext queues a request: a rejection (429) surfaces before the opening chunk commits a 200.
            var first = await Task.WhenAll(streams.Select(s => s.MoveNextAsync().AsTask()));
            var opening = Envelope(id, created, modelName, choices.Select(c => c.Opening(echoed)));
            if (auto)
                opening["adapters"] = ModelResolver.Describe(adapters);
            await sse.SendAsync(opening, ct);
            await Task.WhenAll(choices.Select(async (c, i) =>
            {
                for (bool more = first[i]; more; more = await streams[i].MoveNextAsync())
                {
                    var e = streams[i].Current;
                    var choice = c.Next(e, topLogprobs is null ? null : LogprobsFormatter.Chat([e], names));
                    // The prompt's scores come once, with choice 0's first token (vLLM's first chunk carries them).
                    var scores = i == 0 && promptLogprobs is not null && e.PromptLogprobs is { } s ? LogprobsFormatter.Prompt(s, model) : null;
                    if (choice is null && scores is null)
                        continue;
                    var chunk = Envelope(id, created, modelName, choice is null ? [] : [choice]);
                    if (scores is not null)
                        chunk["prompt_logprobs"] = scores;
                    await sse.SendAsync(chunk, ct, completeInTurn: usage.EveryChunk ? c => c["usage"] = CompletionsEndpoint.Usage(results) : null);
                }
            }));

            if (usage.AtEnd)
            {
                var last = Envelope(id, created, modelName, []);
                last["usage"] = CompletionsEndpoint.Usage(results);
                await sse.SendAsync(last, ct);
            }
        }
        catch (Exception error) when (ApiException.Of(error) is ApiException ex && ctx.Response.HasStarted)
        {
            // Before the first byte the error gets its own status (429 when the queue is full, 404, 503...), as a client
            // retrying on 429 expects; once events have gone out it can only be the stream's last event.
            await sse.SendAsync(ApiErrorWriter.Body(ex), ct);
        }
        finally
        {
            foreach (var stream in streams)
                await stream.DisposeAsync();
        }

        await sse.DoneAsync(ct);
    }

    private static JsonObject Envelope(string id, long created, string modelName, IEnumerable<JsonObject> choices) => new()
    {
        ["id"] = id,
        ["object"] = "chat.completion.chunk",
        ["created"] = created,
        ["model"] = modelName,
        ["choices"] = new JsonArray(choices.Select(c => (JsonNode)c).ToArray()),
    };
}
