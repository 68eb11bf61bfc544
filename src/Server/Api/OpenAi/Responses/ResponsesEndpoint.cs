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
/// Nothing is stored (<c>store</c> is answered false).
/// </summary>
internal sealed class ResponsesEndpoint(GenerationRequestStage stage, GenerationClient client, TimeProvider time, IOptions<ChatOptions> options)
{
    public async Task HandleAsync(HttpContext ctx)
    {
        var ct = ctx.RequestAborted;
        using var doc = await RequestBody.ReadAsync(ctx.Request, ct);
        var request = doc.RootElement;
        using var chat = JsonDocument.Parse(ResponsesRequest.ToChat(request).ToJsonString());
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
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        if (request.TryGetProperty("stream", out var stream) && stream.ValueKind == JsonValueKind.True)
        {
            await StreamAsync(ctx, run, request, id, created);
            return;
        }

        await foreach (var e in run.Sources[0].WithCancellation(ct))
            choice.Result.Add(e);
        var message = (JsonObject)choice.Whole(null, returnIds: false)["message"]!;
        var body = ResponseShapes.Response(id, created, run.ModelName, request, Status(choice.Result.Finish), ResponseShapes.Items(message),
            ResponseShapes.Usage(CompletionsEndpoint.Usage(run.Results)), Incomplete(choice.Result.Finish));
        await Results.Json(body).ExecuteAsync(ctx);
    }

    private static async Task StreamAsync(HttpContext ctx, ChatRun run, JsonElement request, string id, long created)
    {
        var ct = ctx.RequestAborted;
        var sse = new ServerSentEvents(ctx.Response);
        var choice = run.Choices[0];
        var events = new ResponseEventStream(sse, ct);
        await using var source = run.Sources[0].GetAsyncEnumerator(ct);
        try
        {
            // The first MoveNext queues the request: a rejection (429) surfaces before the first event commits a 200.
            bool more = await source.MoveNextAsync();
            sse.Start();
            var opening = ResponseShapes.Response(id, created, run.ModelName, request, "in_progress", [], null, null);
            await events.SendAsync("response.created", new JsonObject { ["response"] = opening });
            await events.SendAsync("response.in_progress", new JsonObject { ["response"] = opening.DeepClone() });
            for (; more; more = await source.MoveNextAsync())
                if (choice.Next(source.Current, null)?["delta"] is JsonObject delta)
                    await events.DeltaAsync(delta);
            if (events.Items.Count == 0)
                await events.DeltaAsync(new JsonObject { ["content"] = "" });
            await events.CloseAsync();
            var finish = choice.Result.Finish;
            var done = ResponseShapes.Response(id, created, run.ModelName, request, Status(finish), events.Items,
                ResponseShapes.Usage(CompletionsEndpoint.Usage(run.Results)), Incomplete(finish));
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
        _ when param.StartsWith("tools[", StringComparison.Ordinal) => param.Replace(".function.", ".", StringComparison.Ordinal),
        _ => param,
    };
}
