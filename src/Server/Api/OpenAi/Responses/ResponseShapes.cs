using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serving.Server.Api.OpenAi.Responses;

/// <summary>
/// OpenAI's Responses objects built from a chat answer: the <c>response</c> (its settings echoed from the request), its
/// output items (<c>reasoning</c>, <c>message</c> with one <c>output_text</c> part, <c>function_call</c>s) and its usage.
/// </summary>
internal static class ResponseShapes
{
    public static string NewId(string prefix) => prefix + "_" + Guid.NewGuid().ToString("N");

    /// <summary>The response object; <paramref name="output"/> and <paramref name="usage"/> as they stand (empty and null while in progress).</summary>
    public static JsonObject Response(string id, long createdAt, string model, JsonElement request, string status, JsonArray output, JsonObject? usage,
        string? incompleteReason)
    {
        JsonNode? Echo(string name, JsonNode? otherwise) =>
            request.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v.ToNode() : otherwise;
        return new JsonObject
        {
            ["id"] = id,
            ["object"] = "response",
            ["created_at"] = createdAt,
            ["status"] = status,
            ["error"] = null,
            ["incomplete_details"] = incompleteReason is null ? null : new JsonObject { ["reason"] = incompleteReason },
            ["instructions"] = Echo("instructions", null),
            ["max_output_tokens"] = Echo("max_output_tokens", null),
            ["model"] = model,
            ["output"] = output,
            ["parallel_tool_calls"] = Echo("parallel_tool_calls", true),
            ["previous_response_id"] = null,
            ["reasoning"] = null,
            ["store"] = false,
            ["temperature"] = Echo("temperature", null),
            ["text"] = Echo("text", new JsonObject { ["format"] = new JsonObject { ["type"] = "text" } }),
            ["tool_choice"] = Echo("tool_choice", "auto"),
            ["tools"] = Echo("tools", new JsonArray()),
            ["top_p"] = Echo("top_p", null),
            ["truncation"] = "disabled",
            ["usage"] = usage,
            ["metadata"] = Echo("metadata", new JsonObject()),
        };
    }

    /// <summary>Chat's usage (<see cref="CompletionsEndpoint.Usage"/>) in Responses' names.</summary>
    public static JsonObject Usage(JsonObject chat)
    {
        int input = (int)chat["prompt_tokens"]!, output = (int)chat["completion_tokens"]!;
        return new JsonObject
        {
            ["input_tokens"] = input,
            ["input_tokens_details"] = new JsonObject { ["cached_tokens"] = chat["prompt_tokens_details"]?["cached_tokens"]?.DeepClone() ?? 0 },
            ["output_tokens"] = output,
            ["output_tokens_details"] = new JsonObject { ["reasoning_tokens"] = 0 },
            ["total_tokens"] = input + output,
        };
    }

    /// <summary>The output items of a whole chat <c>message</c>: its reasoning, its text, its calls, in that order.</summary>
    public static JsonArray Items(JsonObject message)
    {
        var items = new JsonArray();
        if ((string?)message["reasoning"] is { Length: > 0 } reasoning)
            items.Add(Reasoning(NewId("rs"), reasoning));
        var calls = message["tool_calls"] as JsonArray;
        string? content = (string?)message["content"];
        if (!string.IsNullOrEmpty(content) || calls is null)
            items.Add(Message(NewId("msg"), content ?? "", "completed"));
        foreach (var call in calls ?? [])
            items.Add(FunctionCall(NewId("fc"), (string)call!["id"]!, (string)call["function"]!["name"]!, (string)call["function"]!["arguments"]!, "completed"));
        return items;
    }

    public static JsonObject Reasoning(string id, string text) => new()
    {
        ["type"] = "reasoning", ["id"] = id, ["summary"] = new JsonArray(),
        ["content"] = new JsonArray(new JsonObject { ["type"] = "reasoning_text", ["text"] = text }),
    };

    public static JsonObject Message(string id, string? text, string status) => new()
    {
        ["type"] = "message", ["id"] = id, ["status"] = status, ["role"] = "assistant",
        ["content"] = text is null ? new JsonArray() : new JsonArray(OutputText(text)),
    };

    public static JsonObject OutputText(string text) => new() { ["type"] = "output_text", ["text"] = text, ["annotations"] = new JsonArray() };

    public static JsonObject FunctionCall(string id, string callId, string name, string arguments, string status) => new()
    {
        ["type"] = "function_call", ["id"] = id, ["call_id"] = callId, ["name"] = name, ["arguments"] = arguments, ["status"] = status,
    };
}
