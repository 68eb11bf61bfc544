using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Serving.Contracts.Generation;
using Serving.Runtime.Generation;
using Serving.Server.Requests;

namespace Serving.Server.Api.OpenAi.Responses;

/// <summary>
/// <c>POST /v1/responses</c>, OpenAI's Responses API: the request read into the chat request it means
/// (<see cref="ResponsesRequest"/>), run as one (<see cref="ChatRun"/>: template, adapters, tools, structured output and
/// reasoning alike), answered as a <c>response</c> — whole, or streamed as typed events (<see cref="ResponseEventStream"/>).
/// With <c>store</c> (the default) the finished response is kept for its tenant (<see cref="ResponseStore"/>), and a later
/// request continues it with <c>previous_response_id</c>: its conversation (inputs and outputs, not its instructions) goes in
/// before the new input.
/// </summary>
internal sealed class ResponsesEndpoint(GenerationRequestStage stage, GenerationClient client, TimeProvider time, IOptions<ChatOptions> options,
    ResponseStore store)
{
    public async Task HandleAsync(HttpContext ctx)
    {
        var ct = ctx.RequestAborted;
        using var doc = await RequestBody.ReadAsync(ctx.Request, ct);
        var request = doc.RootElement;
        string tenant = Security.AuthenticationMiddleware.CallerOf(ctx).Tenant;
        bool keep = Keeps(request);
        var previous = Previous(request, tenant);
        var conversation = previous?.Conversation ?? [];
        using var earlier = previous is null ? null : JsonDocument.Parse("[" + string.Join(',', conversation) + "]");
        var chatRequest = ResponsesRequest.ToChat(request, earlier?.RootElement);
        ResponseLogprobs.CheckReasoning(chatRequest, options.Value.ReasoningParser);
        using var chat = JsonDocument.Parse(chatRequest.ToJsonString());
        IReadOnlyList<string> input = [.. conversation, .. ResponsesRequest.InputItems(request.GetProperty("input")).Select(i => i.ToJsonString())];
        if (keep && 2 * input.Sum(i => (long)i.Length) is var bytes && bytes > store.MostBytesPerResponse)
            throw ApiException.BadRequest($"the conversation ({bytes} bytes) is more than a stored response may hold ({store.MostBytesPerResponse}, "
                + "Serving:Responses:StoreBytesPerTenant): send it with 'store': false", previous is null ? "input" : "previous_response_id");
        var stored = new ResponseRecord(tenant, keep ? input : null, previous?.Id);
        ChatRun run;
        try
        {
            run = await ChatRun.StartAsync(new JsonFields(chat.RootElement), ctx, stage, client, time, options.Value);
        }
        catch (Exception error) when (ApiException.Of(error) is { Param: { } param } ex)
        {
            throw new ApiException(ex.Status, ex.Message, ResponsesParam(param)) { RetryAfterSeconds = ex.RetryAfterSeconds };
        }

        var choice = run.Choices[0];
        string id = ResponseShapes.NewId("resp");
        var created = time.GetUtcNow();
        if (request.TryGetProperty("stream", out var stream) && stream.ValueKind == JsonValueKind.True)
        {
            await StreamAsync(ctx, run, request, id, created, stored);
            return;
        }

        await foreach (var e in run.Sources[0].WithCancellation(ct))
            choice.Result.Add(e);
        var message = (JsonObject)choice.Whole(null, returnIds: false)["message"]!;
        var items = ResponseShapes.Items(message);
        if (run.TopLogprobs is not null && items.OfType<JsonObject>().FirstOrDefault(i => (string?)i["type"] == "message") is { } answer)
            answer["content"]![0]!["logprobs"] = ResponseLogprobs.Entries(choice.Result.Events, run.Names);
        var body = Finished(id, created, run, request, items, stored);
        await Results.Json(body).ExecuteAsync(ctx);
    }

    /// <summary>What a finished response is kept as, known before it runs: its tenant, the input items to keep (null: not kept) and what it continued.</summary>
    private sealed record ResponseRecord(string Tenant, IReadOnlyList<string>? Input, string? Previous);

    /// <summary><c>store</c>: true unless the request says false; true asked of a server that stores nothing is a 400.</summary>
    private bool Keeps(JsonElement request)
    {
        bool asked = !request.TryGetProperty("store", out var value) || value.ValueKind != JsonValueKind.False;
        if (asked && !store.Enabled && value.ValueKind == JsonValueKind.True)
            throw ApiException.BadRequest("'store' is true, but this server keeps no responses (Serving:Responses:StoreBytes is 0)", "store");
        return asked && store.Enabled;
    }

    /// <summary>The stored response <c>previous_response_id</c> names, of the caller's tenant; another tenant's reads as missing.</summary>
    private StoredResponse? Previous(JsonElement request, string tenant)
    {
        if (!request.TryGetProperty("previous_response_id", out var value) || value.ValueKind == JsonValueKind.Null)
            return null;
        if (value.ValueKind != JsonValueKind.String)
            throw ApiException.BadRequest("'previous_response_id' must be a string", "previous_response_id");
        if (!store.Enabled)
            throw ApiException.BadRequest("'previous_response_id' needs stored responses, and this server keeps none (Serving:Responses:StoreBytes is 0): "
                + "send the conversation so far in 'input'", "previous_response_id");
        string id = value.GetString()!;
        return store.Find(tenant, id) ?? throw ApiException.BadRequest($"no stored response '{Shown(id)}': it was never made under this key, was "
            + "deleted, or has expired or been pushed out (Serving:Responses); send the conversation so far in 'input'", "previous_response_id");
    }

    /// <summary>An id as an error message may repeat it: what the caller sent, cut short (it is the caller's own text).</summary>
    internal static string Shown(string id) => id.Length <= 64 ? id : id[..64] + "…";

    /// <summary>The finished response object, kept first when it is to be (so the object says whether it was).</summary>
    private JsonObject Finished(string id, DateTimeOffset created, ChatRun run, JsonElement request, JsonArray output, ResponseRecord record)
    {
        var finish = run.Choices[0].Result.Finish;
        var body = ResponseShapes.Response(id, created.ToUnixTimeSeconds(), run.ModelName, request, Status(finish), output,
            ResponseShapes.Usage(CompletionsEndpoint.Usage(run.Results)), Incomplete(finish));
        body["previous_response_id"] = record.Previous;
        body["store"] = record.Input is not null;
        if (record.Input is { } input)
            body["store"] = store.Add(new StoredResponse(id, record.Tenant, created, body.ToJsonString(), input, [.. output.Select(i => i!.ToJsonString())]));
        return body;
    }

    private async Task StreamAsync(HttpContext ctx, ChatRun run, JsonElement request, string id, DateTimeOffset created, ResponseRecord record)
    {
        var ct = ctx.RequestAborted;
        var sse = new ServerSentEvents(ctx.Response);
        var choice = run.Choices[0];
        var events = new ResponseEventStream(sse, ct, withLogprobs: run.TopLogprobs is not null);
        await using var source = run.Sources[0].GetAsyncEnumerator(ct);
        try
        {
            // The first MoveNext queues the request: a rejection (429) surfaces before the first event commits a 200.
            bool more = await source.MoveNextAsync();
            sse.Start();
            var opening = ResponseShapes.Response(id, created.ToUnixTimeSeconds(), run.ModelName, request, "in_progress", [], null, null);
            opening["previous_response_id"] = record.Previous;
            opening["store"] = record.Input is not null;
            await events.SendAsync("response.created", new JsonObject { ["response"] = opening });
            await events.SendAsync("response.in_progress", new JsonObject { ["response"] = opening.DeepClone() });
            for (; more; more = await source.MoveNextAsync())
            {
                if (run.TopLogprobs is not null)
                    events.AddLogprobs(ResponseLogprobs.Entries([source.Current], run.Names));
                if (choice.Next(source.Current, null)?["delta"] is JsonObject delta)
                    await events.DeltaAsync(delta);
            }

            if (events.Items.Count == 0)
                await events.DeltaAsync(new JsonObject { ["content"] = "" });
            await events.CloseAsync();
            var finish = choice.Result.Finish;
            var done = Finished(id, created, run, request, events.Items, record);
            await events.SendAsync(finish == FinishReason.Length ? "response.incomplete" : "response.completed", new JsonObject { ["response"] = done });
        }
        catch (Exception error) when (ApiException.Of(error) is ApiException ex && ctx.Response.HasStarted)
        {
            await events.SendAsync("error", new JsonObject { ["code"] = ex.Type, ["message"] = ex.Message, ["param"] = ex.Param });
        }
    }

    private static string Status(FinishReason finish) => finish == FinishReason.Length ? "incomplete" : "completed";

    private static string? Incomplete(FinishReason finish) => finish == FinishReason.Length ? "max_output_tokens" : null;

    /// <summary>A chat field named in an error, as the Responses request wrote it.</summary>
    private static string ResponsesParam(string param) => param switch
    {
        _ when param.StartsWith("messages", StringComparison.Ordinal) => "input" + param["messages".Length..],
        _ when param.StartsWith("response_format", StringComparison.Ordinal) => "text.format" + param["response_format".Length..],
        "max_tokens" => "max_output_tokens",
        "reasoning_effort" => "reasoning.effort",
        _ when param.StartsWith("tools[", StringComparison.Ordinal) => param.Replace(".function.", ".", StringComparison.Ordinal),
        _ => param,
    };
}
