using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serving.Server.Api.OpenAi.Responses;

/// <summary>
/// The Responses API's token log-probabilities: <c>include: ["message.output_text.logprobs"]</c> (with <c>top_logprobs</c>,
/// 0–20 alternatives per token) asks for them on the answer's <c>output_text</c> and its streamed deltas, in chat's entry
/// shape (<c>token</c>, <c>logprob</c>, <c>bytes</c>, <c>top_logprobs</c>). They are the answer's tokens only when every
/// token is the answer's, so a request that may also reason or call tools is refused asking for them.
/// </summary>
internal static class ResponseLogprobs
{
    public const string Include = "message.output_text.logprobs";

    /// <summary>Reads <c>include</c> and <c>top_logprobs</c> into <paramref name="chat"/>'s <c>logprobs</c>/<c>top_logprobs</c>; a 400 names the field at fault.</summary>
    public static void Read(JsonElement request, JsonObject chat)
    {
        bool asked = false;
        if (request.TryGetProperty("include", out var include) && include.ValueKind != JsonValueKind.Null)
        {
            if (include.ValueKind != JsonValueKind.Array)
                throw ApiException.BadRequest("'include' must be a list", "include");
            int i = 0;
            foreach (var item in include.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.String || item.GetString() != Include)
                    throw ApiException.BadRequest($"'include[{i}]': {(item.ValueKind == JsonValueKind.String ? $"'{ResponsesEndpoint.Shown(item.GetString()!)}'" : "this value")} "
                        + $"is not supported ('{Include}' is)", $"include[{i}]");
                asked = true;
                i++;
            }
        }

        if (request.TryGetProperty("top_logprobs", out var top) && top.ValueKind != JsonValueKind.Null)
        {
            if (!asked)
                throw ApiException.BadRequest($"'top_logprobs' needs 'include': [\"{Include}\"]", "top_logprobs");
            chat["top_logprobs"] = top.ToNode();
        }

        if (!asked)
            return;
        if (chat["tools"] is JsonArray { Count: > 0 })
            throw ApiException.BadRequest($"'{Include}' is not supported with tools: a tool call's tokens are not the answer's text (chat completions return every token's)", "include");
        chat["logprobs"] = true;
    }

    /// <summary>The entries of <paramref name="events"/>' tokens, in chat's shape.</summary>
    public static JsonArray Entries(IReadOnlyList<Serving.Contracts.Generation.TokenEvent> events, LogprobTokens names)
    {
        var chat = LogprobsFormatter.Chat(events, names);
        var entries = (JsonArray)chat["content"]!;
        chat.Remove("content");
        return entries;
    }

    /// <summary>A reasoning model's tokens are its reasoning's and its answer's: refused on Responses (chat completions return every token's).</summary>
    public static void CheckReasoning(JsonObject chat, string reasoningParser)
    {
        if (chat["logprobs"] is not null && reasoningParser != Reasoning.ReasoningParsers.None)
            throw ApiException.BadRequest($"'{Include}' is not supported with a reasoning parser (--reasoning-parser {reasoningParser}): the reasoning's tokens "
                + "are not the answer's text (chat completions return every token's)", "include");
    }
}
