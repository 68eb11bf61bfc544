using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Serving.Contracts.Generation;
using Serving.Runtime.Generation;
using Serving.Server.Api.OpenAi.Reasoning;
using Serving.Server.Api.OpenAi.Tools;
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
        var model = stage.Model;
        var caller = Security.AuthenticationMiddleware.CallerOf(ctx);
        var (pinned, routing, modelName) = ModelResolver.ReadTarget(f, stage, caller);
        bool auto = pinned is null;
        UnsupportedFields.Refuse(f, chat: true);
        var tools = ToolChoice.Read(f);
        string rendered = ChatPromptReader.Render(f, model, time.GetLocalNow(), tools);

        int? topLogprobs = f.Bool("logprobs") == true ? f.Int("top_logprobs", 0, 20) ?? 0 : null;
        var sampling = SamplingRequestReader.Read(f, model.GenerationDefaults, topLogprobs, defaultMaxTokens: null);
        var format = OutputConstraintReader.Read(f);
        if (tools.Forced)
            format = format is null ? tools.Constraint() : throw ApiException.BadRequest($"'tool_choice' forces tool calls; it cannot be combined with '{format.Value.Field}'", "tool_choice");
        var chat = options.Value;
        string parser = chat.ToolCallParser;
        bool thinks = ReasoningParsers.StartsInReasoning(chat.ReasoningParser,
            thinkingDisabled: f.Object("chat_template_kwargs")?.Get("enable_thinking") is { ValueKind: System.Text.Json.JsonValueKind.False });
        if (thinks && format is { } held)
            format = (held.Constraint with { FreeTextUntil = ReasoningParsers.EndOfReasoning }, held.Field);    // the format holds the answer, not the thinking
        if (tools.Kind == ToolChoiceKind.Auto && tools.Tools.Count > 0 && parser == ToolCallParsers.None)
            throw ApiException.BadRequest("'tool_choice' is 'auto' (the default with tools), which needs the server started with --tool-call-parser "
                + $"({string.Join(", ", ToolCallParsers.Names.Skip(1))}) to read the model's calls; use 'none', 'required' or a named function", "tool_choice");
        sampling = sampling with { Constraint = format?.Constraint };
        if (tools.Kind == ToolChoiceKind.Auto && ToolCallParsers.ShowsSpecialTokens(parser))
            sampling = sampling with { SkipSpecialTokens = false };
        // vLLM's add_special_tokens, false by default: the chat template writes the special tokens itself.
        int[] prompt = stage.TokenizePrompt(rendered, f.Bool("add_special_tokens") ?? false, "messages");
        var request = (await stage.PrepareAsync([prompt], sampling, pinned, routing, caller, null, ct, GenerationRequestStage.ReadCacheSalt(f),
            format?.Field ?? "structured_outputs"))[0];
        var adapters = request.Adapters;
        string id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var result = new ChoiceResult(0, prompt.Length);
        bool returnIds = f.Bool("return_token_ids") ?? false;
        var output = new ChatOutput();
        var reader = ChatTextReader.For(output, tools, chat, thinks);
        var writer = new ChatOutputWriter(output, tools.Parallel, f.Bool("include_reasoning") ?? true);

        if (f.Bool("stream") != true)
        {
            await foreach (var e in client.SubmitAsync(request, ct))
                result.Add(e);
            if (reader is null)
                output.Content.Append(result.Text);
            else
            {
                reader.Push(result.Text.ToString());
                reader.Finish();
            }

            var choice = new JsonObject
            {
                ["index"] = 0,
                ["message"] = writer.Message(),
                ["logprobs"] = topLogprobs is null ? null : LogprobsFormatter.Chat(result.Events, model),
                ["finish_reason"] = FinishName(result.Finish, tools, writer),
            };
            if (returnIds)
                choice["token_ids"] = CompletionsEndpoint.Ids(result.TokenIds);
            if (result.Events.Count > 0 && ChoiceResult.IncompleteDetails(result.Events[^1]) is { } incomplete)
                choice["incomplete_details"] = incomplete;
            var body = Envelope(id, created, modelName, "chat.completion", choice);
            if (auto)
                body["adapters"] = ModelResolver.Describe(adapters);
            body["usage"] = CompletionsEndpoint.Usage([result]);
            if (returnIds)
                body["prompt_token_ids"] = CompletionsEndpoint.Ids(prompt);
            await Results.Json(body).ExecuteAsync(ctx);
            return;
        }

        bool includeUsage = f.Object("stream_options")?.Bool("include_usage") == true;
        var sse = new ServerSentEvents(ctx.Response);
        sse.Start();
        try
        {
            // The first MoveNext queues the request: a rejection (429) surfaces before the opening chunk commits a 200.
            await using var tokens = client.SubmitAsync(request, ct).GetAsyncEnumerator(ct);
            bool more = await tokens.MoveNextAsync();
            var opening = Envelope(id, created, modelName, "chat.completion.chunk", Delta(new JsonObject { ["role"] = "assistant", ["content"] = "" }, null, null));
            if (auto)
                opening["adapters"] = ModelResolver.Describe(adapters);
            await sse.SendAsync(opening, ct);
            for (; more; more = await tokens.MoveNextAsync())
            {
                var e = tokens.Current;
                result.Add(e);
                var lp = topLogprobs is null ? null : LogprobsFormatter.Chat([e], model);
                JsonObject delta;
                if (reader is null)
                    delta = new JsonObject { ["content"] = e.TextDelta };
                else
                {
                    reader.Push(e.TextDelta);
                    if (e.Finish != FinishReason.None)
                        reader.Finish();
                    delta = writer.NextDelta();
                    if (delta.Count == 0 && lp is null && e.Finish == FinishReason.None)
                        continue;                           // the reader holds this text until it knows what it is
                }

                var chunk = Delta(delta, lp, FinishName(e.Finish, tools, writer));
                if (ChoiceResult.IncompleteDetails(e) is { } incomplete)
                    chunk["incomplete_details"] = incomplete;
                await sse.SendAsync(Envelope(id, created, modelName, "chat.completion.chunk", chunk), ct);
            }

            if (includeUsage)
            {
                var last = new JsonObject { ["id"] = id, ["object"] = "chat.completion.chunk", ["created"] = created, ["model"] = modelName, ["choices"] = new JsonArray() };
                last["usage"] = CompletionsEndpoint.Usage([result]);
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

    /// <summary>
    /// OpenAI's finish reasons: <c>tool_calls</c> when the model's own or a <c>required</c> choice ended in calls;
    /// a named function's forced call ends with <c>stop</c>, as OpenAI and vLLM report it; <c>length</c> stays.
    /// </summary>
    private static string? FinishName(FinishReason finish, ToolChoice tools, ChatOutputWriter writer) =>
        finish == FinishReason.Stop && tools.Kind != ToolChoiceKind.Named && writer.CalledTools ? "tool_calls" : ChoiceResult.FinishName(finish);

    private static JsonObject Delta(JsonObject delta, JsonObject? logprobs, string? finish) =>
        new() { ["index"] = 0, ["delta"] = delta, ["logprobs"] = logprobs, ["finish_reason"] = finish };

    private static JsonObject Envelope(string id, long created, string modelName, string kind, JsonObject choice) => new()
    {
        ["id"] = id,
        ["object"] = kind,
        ["created"] = created,
        ["model"] = modelName,
        ["choices"] = new JsonArray(choice),
    };
}
