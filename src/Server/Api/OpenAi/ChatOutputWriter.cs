using System.Text.Json.Nodes;
using Serving.Server.Api.OpenAi.Tools;

namespace Serving.Server.Api.OpenAi;

/// <summary>
/// OpenAI's shapes of what a <see cref="ChatOutput"/> holds: the whole <c>message</c>, or, streaming, each chunk's
/// <c>delta</c> with only what was settled since the last one — new reasoning, new content, a new call whole (its id,
/// name and arguments so far), more arguments of a call already announced. Reasoning is given under both of vLLM's
/// names, <c>reasoning</c> (current) and <c>reasoning_content</c> (older releases, DeepSeek's API and most clients),
/// and left out when the request asked without it (<c>include_reasoning: false</c>). Without <paramref name="parallel"/>
/// calls, only the first call is given (OpenAI's <c>parallel_tool_calls: false</c>).
/// </summary>
internal sealed class ChatOutputWriter(ChatOutput output, bool parallel, bool includeReasoning = true)
{
    private readonly List<int> _argumentsSent = [];
    private int _contentSent;
    private int _reasoningSent;

    private int VisibleCalls => parallel ? output.Calls.Count : Math.Min(1, output.Calls.Count);

    /// <summary>Whether the output holds any call it gives.</summary>
    public bool CalledTools => VisibleCalls > 0;

    /// <summary>The whole <c>message</c>: content null when it is empty and calls were made.</summary>
    public JsonObject Message()
    {
        var message = new JsonObject
        {
            ["role"] = "assistant",
            ["content"] = (CalledTools || output.Reasoning.Length > 0) && output.Content.Length == 0 ? null : output.Content.ToString(),
        };
        if (includeReasoning && output.Reasoning.Length > 0)
            AddReasoning(message, output.Reasoning.ToString());
        if (CalledTools)
        {
            var calls = new JsonArray();
            for (int i = 0; i < VisibleCalls; i++)
                calls.Add(Call(null, output.Calls[i], output.Calls[i].Arguments.ToString()));
            message["tool_calls"] = calls;
        }

        return message;
    }

    /// <summary>What was settled since the previous call; an empty object when nothing was.</summary>
    public JsonObject NextDelta()
    {
        var delta = new JsonObject();
        if (output.Reasoning.Length > _reasoningSent)
        {
            if (includeReasoning)
                AddReasoning(delta, output.Reasoning.ToString(_reasoningSent, output.Reasoning.Length - _reasoningSent));
            _reasoningSent = output.Reasoning.Length;
        }

        if (output.Content.Length > _contentSent)
        {
            delta["content"] = output.Content.ToString(_contentSent, output.Content.Length - _contentSent);
            _contentSent = output.Content.Length;
        }

        var calls = new JsonArray();
        for (int i = 0; i < VisibleCalls; i++)
        {
            var call = output.Calls[i];
            if (i == _argumentsSent.Count)
            {
                calls.Add(Call(i, call, call.Arguments.ToString()));
                _argumentsSent.Add(call.Arguments.Length);
            }
            else if (call.Arguments.Length > _argumentsSent[i])
            {
                string more = call.Arguments.ToString(_argumentsSent[i], call.Arguments.Length - _argumentsSent[i]);
                calls.Add(new JsonObject { ["index"] = i, ["function"] = new JsonObject { ["arguments"] = more } });
                _argumentsSent[i] = call.Arguments.Length;
            }
        }

        if (calls.Count > 0)
            delta["tool_calls"] = calls;
        return delta;
    }

    private static void AddReasoning(JsonObject message, string text)
    {
        message["reasoning"] = text;
        message["reasoning_content"] = text;
    }

    /// <summary>A call whole; streamed ones carry their <paramref name="index"/> in the message's list.</summary>
    private static JsonObject Call(int? index, ToolCall call, string arguments)
    {
        var entry = new JsonObject();
        if (index is int i)
            entry["index"] = i;
        entry["id"] = call.Id;
        entry["type"] = "function";
        entry["function"] = new JsonObject { ["name"] = call.Name, ["arguments"] = arguments };
        return entry;
    }
}
