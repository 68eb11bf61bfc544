using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Serving.Engine.Tokenization;
using Serving.Server.Generation;
using Serving.Server.Hosting;

namespace Serving.Server.OpenAi;

/// <summary><c>POST /v1/chat/completions</c>: messages rendered with the model's chat template, then generated like a completion.</summary>
internal sealed class ChatCompletionsEndpoint(ModelHost host, GenerationClient client, IOptions<ModelOptions> options, Routing.AdapterRouter router,
    TimeProvider time)
{
    public async Task HandleAsync(HttpContext ctx)
    {
        var ct = ctx.RequestAborted;
        using var doc = await RequestBody.ReadAsync(ctx.Request, ct);
        var f = new JsonFields(doc.RootElement);
        var model = host.Model;
        var caller = Security.AuthenticationMiddleware.CallerOf(ctx);
        bool auto = ModelResolver.IsAuto(f, host);
        var adapters = auto ? Batching.AdapterMix.None : ModelResolver.Resolve(f, host, caller);
        var routing = auto ? ModelResolver.ReadRouting(f) : default;
        string modelName = f.String("model")!;
        var messages = ReadMessages(f);
        string rendered;
        try
        {
            rendered = model.ChatTemplate.Render(messages, Tools(f), f.Bool("add_generation_prompt") ?? true, TemplateArguments(f), time.GetLocalNow());
        }
        catch (ChatTemplateException ex)
        {
            throw ApiException.BadRequest(ex.Message, "messages");
        }

        int? topLogprobs = f.Bool("logprobs") == true ? f.Int("top_logprobs", 0, 20) ?? 0 : null;
        var sampling = SamplingRequestReader.Read(f, model.GenerationDefaults, topLogprobs, defaultMaxTokens: null);
        int[] prompt;
        try
        {
            prompt = model.Tokenizer.Encode(rendered, addSpecialTokens: false);
        }
        catch (TokenizerException ex)
        {
            throw ApiException.BadRequest(ex.Message, "messages");
        }

        int context = Math.Min(options.Value.MaxContext, model.Model.MaxPositions);
        sampling = PromptLimits.Apply(prompt, sampling, context, model.Config.VocabSize);
        if (auto)
            adapters = await router.RouteAsync(prompt, caller, routing.Candidates, routing.TopK, routing.Temperature, ct, routing.Method);
        string id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var result = new ChoiceResult(0, prompt.Length);
        bool returnIds = f.Bool("return_token_ids") ?? false;

        if (f.Bool("stream") != true)
        {
            await foreach (var e in client.GenerateAsync(prompt, sampling, adapters, ct, tenant: caller.Tenant))
                result.Add(e);
            var choice = new JsonObject
            {
                ["index"] = 0,
                ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = result.Text.ToString() },
                ["logprobs"] = topLogprobs is null ? null : LogprobsFormatter.Chat(result.Events, model.Tokenizer),
                ["finish_reason"] = ChoiceResult.FinishName(result.Finish),
            };
            if (returnIds)
                choice["token_ids"] = CompletionsEndpoint.Ids(result.TokenIds);
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
            await using var tokens = client.GenerateAsync(prompt, sampling, adapters, ct, tenant: caller.Tenant).GetAsyncEnumerator(ct);
            bool more = await tokens.MoveNextAsync();
            var opening = Envelope(id, created, modelName, "chat.completion.chunk", Delta(new JsonObject { ["role"] = "assistant", ["content"] = "" }, null, null));
            if (auto)
                opening["adapters"] = ModelResolver.Describe(adapters);
            await sse.SendAsync(opening, ct);
            for (; more; more = await tokens.MoveNextAsync())
            {
                var e = tokens.Current;
                result.Add(e);
                var lp = topLogprobs is null ? null : LogprobsFormatter.Chat([e], model.Tokenizer);
                await sse.SendAsync(Envelope(id, created, modelName, "chat.completion.chunk",
                    Delta(new JsonObject { ["content"] = e.TextDelta }, lp, ChoiceResult.FinishName(e.Finish))), ct);
            }

            if (includeUsage)
            {
                var last = new JsonObject { ["id"] = id, ["object"] = "chat.completion.chunk", ["created"] = created, ["model"] = modelName, ["choices"] = new JsonArray() };
                last["usage"] = CompletionsEndpoint.Usage([result]);
                await sse.SendAsync(last, ct);
            }
        }
        catch (ApiException ex) when (ctx.Response.HasStarted)
        {
            // Before the first byte the error gets its own status (429 when the queue is full, 404, 503...), as a client
            // retrying on 429 expects; once events have gone out it can only be the stream's last event.
            await sse.SendAsync(ApiErrorWriter.Body(ex), ct);
        }

        await sse.DoneAsync(ct);
    }

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

    /// <summary>
    /// The messages as the template sees them: every field of each message (tool calls, names, ids) as sent, with text
    /// content parts joined into one string, as transformers passes them.
    /// </summary>
    private static List<object?> ReadMessages(JsonFields f)
    {
        if (f.Get("messages") is not { ValueKind: JsonValueKind.Array } list || list.GetArrayLength() == 0)
            throw JsonFields.Bad("messages", "must be a non-empty list");
        var messages = new List<object?>();
        foreach (var m in list.EnumerateArray())
        {
            if (m.ValueKind != JsonValueKind.Object)
                throw JsonFields.Bad("messages", "entries must be objects with 'role' and 'content'");
            var mf = new JsonFields(m);
            string role = mf.String("role") ?? throw JsonFields.Bad("messages", "entries need a 'role'");
            if (!Roles.Contains(role))
                throw JsonFields.Bad("messages", $"role '{role}' is not one of {string.Join(", ", Roles)}");
            var message = (Dictionary<string, object?>)Engine.Templating.JinjaTemplate.FromJson(JsonNode.Parse(m.GetRawText()))!;
            var content = mf.Get("content");
            message["content"] = content is { ValueKind: JsonValueKind.Null } ? null : Content(content);
            messages.Add(message);
        }

        return messages;
    }

    /// <summary>OpenAI's roles, and Llama 3.1's <c>ipython</c> for tool results; what a template does with each is its own affair.</summary>
    private static readonly string[] Roles = ["system", "developer", "user", "assistant", "tool", "function", "ipython"];

    private static object? Tools(JsonFields f) => f.Get("tools") switch
    {
        null or { ValueKind: JsonValueKind.Null } => null,
        { ValueKind: JsonValueKind.Array } tools => Engine.Templating.JinjaTemplate.FromJson(JsonNode.Parse(tools.GetRawText())),
        _ => throw JsonFields.Bad("tools", "must be a list of tool definitions"),
    };

    /// <summary><c>chat_template_kwargs</c> (vLLM's name): extra template variables such as <c>enable_thinking</c>.</summary>
    private static Dictionary<string, object?>? TemplateArguments(JsonFields f)
    {
        if (f.Get("chat_template_kwargs") is not { } kwargs || kwargs.ValueKind == JsonValueKind.Null)
            return null;
        if (kwargs.ValueKind != JsonValueKind.Object)
            throw JsonFields.Bad("chat_template_kwargs", "must be an object of template variables");
        var arguments = (Dictionary<string, object?>)Engine.Templating.JinjaTemplate.FromJson(JsonNode.Parse(kwargs.GetRawText()))!;
        if (arguments.Keys.FirstOrDefault(ChatTemplate.ReservedVariables.Contains) is string reserved)
            throw JsonFields.Bad("chat_template_kwargs", $"'{reserved}' is set by the server (use the request's own field)");
        return arguments;
    }

    private static string Content(JsonElement? content)
    {
        switch (content)
        {
            case null:
                return "";
            case { ValueKind: JsonValueKind.String } s:
                return s.GetString()!;
            case { ValueKind: JsonValueKind.Array } parts:
                var sb = new StringBuilder();
                foreach (var part in parts.EnumerateArray())
                {
                    if (part.ValueKind != JsonValueKind.Object)
                        throw JsonFields.Bad("messages", "content parts must be objects like {\"type\": \"text\", \"text\": \"...\"}");
                    var pf = new JsonFields(part);
                    if (pf.String("type") != "text")
                        throw JsonFields.Bad("messages", "only text content parts are supported");
                    sb.Append(pf.String("text"));
                }

                return sb.ToString();
            default:
                throw JsonFields.Bad("messages", "content must be a string or a list of text parts");
        }
    }
}
