using Serving.Runtime.Generation;
using Serving.Server.Api.OpenAi.Reasoning;
using Serving.Server.Api.OpenAi.Tools;
using Serving.Server.Requests;

namespace Serving.Server.Api.OpenAi;

/// <summary>
/// A chat request read, rendered, validated and submitted: what both chat front doors (<c>/v1/chat/completions</c> and
/// <c>/v1/responses</c>, which reads its body into a chat one) then write out in their own shapes. Every check that can
/// refuse the request runs in <see cref="StartAsync"/>, before a byte of the answer.
/// </summary>
internal sealed class ChatRun
{
    public required JsonFields Fields { get; init; }
    public required string ModelName { get; init; }

    /// <summary>Whether the request routed itself (<c>model: "auto"</c>): answers then say which adapters it got.</summary>
    public required bool Auto { get; init; }

    public required int[] Prompt { get; init; }
    public required PinnedAdapters Adapters { get; init; }
    public required IReadOnlyList<ChatChoice> Choices { get; init; }
    public required IReadOnlyList<IAsyncEnumerable<Contracts.Generation.TokenEvent>> Sources { get; init; }
    public required int? TopLogprobs { get; init; }
    public required int? PromptLogprobs { get; init; }
    public required LogprobTokens Names { get; init; }
    public required bool ReturnIds { get; init; }
    public required string Echoed { get; init; }
    public required Runtime.Hosting.ServedModel Model { get; init; }

    public IReadOnlyList<ChoiceResult> Results => [.. Choices.Select(c => c.Result)];

    public static async Task<ChatRun> StartAsync(JsonFields f, HttpContext ctx, GenerationRequestStage stage, GenerationClient client, TimeProvider time,
        ChatOptions chat)
    {
        var ct = ctx.RequestAborted;
        var model = stage.Model;
        var caller = Security.AuthenticationMiddleware.CallerOf(ctx);
        var (pinned, routing, modelName) = ModelResolver.ReadTarget(f, stage, caller);
        UnsupportedFields.Refuse(f, chat: true);
        var tools = ToolChoice.Read(f);
        string rendered = ChatPromptReader.Render(f, model, time.GetLocalNow(), tools);

        int? topLogprobs = f.Bool("logprobs") == true ? f.Int("top_logprobs", 0, stage.MaxLogprobs) ?? 0
            : f.Int("top_logprobs", 0, stage.MaxLogprobs) is > 0 ? throw JsonFields.Bad("top_logprobs", "needs logprobs: true") : null;
        var sampling = SamplingRequestReader.Read(f, model.GenerationDefaults, topLogprobs, defaultMaxTokens: null);
        int? promptLogprobs = f.Int("prompt_logprobs", 0, stage.MaxLogprobs);
        sampling = sampling with { PromptLogprobs = promptLogprobs, BadWords = BadWordsReader.Read(f, model) };
        var format = OutputConstraintReader.Read(f);
        if (tools.Forced)
            format = format is null ? tools.Constraint() : throw ApiException.BadRequest($"'tool_choice' forces tool calls; it cannot be combined with '{format.Value.Field}'", "tool_choice");
        string parser = chat.ToolCallParser;
        bool thinks = ReasoningParsers.StartsInReasoning(chat.ReasoningParser,
            thinkingDisabled: f.Object("chat_template_kwargs")?.Get("enable_thinking") is { ValueKind: System.Text.Json.JsonValueKind.False });
        // The format holds the answer, not the reasoning before it (a forced call's format holds gpt-oss's whole text).
        if (format is { } held && !chat.StructuredOutputsInReasoning && !(tools.Forced && chat.ReasoningParser == ReasoningParsers.Harmony)
            && ReasoningParsers.FreeReasoning(chat.ReasoningParser, thinks) is { } reasoning)
            format = (held.Constraint with { FreeText = reasoning }, held.Field);
        if (tools.Kind == ToolChoiceKind.Auto && tools.Tools.Count > 0 && parser == ToolCallParsers.None)
            throw ApiException.BadRequest("'tool_choice' is 'auto' (the default with tools), which needs the server started with --tool-call-parser "
                + $"({string.Join(", ", ToolCallParsers.Names.Skip(1))}) to read the model's calls; use 'none', 'required' or a named function", "tool_choice");
        sampling = sampling with { Constraint = format?.Constraint };
        // gpt-oss's harmony channels are special tokens: its reader needs them in the text.
        if (tools.Kind == ToolChoiceKind.Auto && ToolCallParsers.ShowsSpecialTokens(parser) || chat.ReasoningParser == ReasoningParsers.Harmony && !tools.Forced)
            sampling = sampling with { SkipSpecialTokens = false };
        // vLLM's add_special_tokens, false by default: the chat template writes the special tokens itself.
        int[] prompt = stage.TokenizePrompt(rendered, f.Bool("add_special_tokens") ?? false, "messages",
            PromptTruncation.Read(f, stage.MaxContext, sampling.MaxTokens));
        int n = SamplingRequestReader.ReadChoiceCount(f);
        var beams = BeamSearchRequest.Read(f, sampling, n);
        var requests = GenerationRequestStage.Copies(await stage.PrepareAsync([prompt], sampling, pinned, routing, caller, null, ct,
            GenerationRequestStage.ReadCacheSalt(f), format?.Field ?? "structured_outputs", stage.CheckPriority(f.Int("priority", int.MinValue, int.MaxValue), caller),
            stage.TokenizePrediction(PredictionReader.Read(f))), n);
        bool includeReasoning = f.Bool("include_reasoning") ?? true;
        return new ChatRun
        {
            Fields = f,
            ModelName = modelName,
            Auto = pinned is null,
            Prompt = prompt,
            Adapters = requests[0].Adapters,
            Choices = [.. requests.Select((_, i) => new ChatChoice(new ChoiceResult(i, prompt.Length, firstOfPrompt: i == 0), tools, chat, thinks, includeReasoning))],
            Sources = beams is null ? [.. requests.Select(r => client.SubmitAsync(r, ct))] : BeamSearch.Sources(client, requests, beams, model, ct),
            TopLogprobs = topLogprobs,
            PromptLogprobs = promptLogprobs,
            Names = new LogprobTokens(model, f.Bool("return_tokens_as_token_ids") ?? chat.ReturnTokensAsTokenIds),
            ReturnIds = f.Bool("return_token_ids") ?? false,
            Echoed = ChatPromptReader.Echoed(f),
            Model = model,
        };
    }
}
