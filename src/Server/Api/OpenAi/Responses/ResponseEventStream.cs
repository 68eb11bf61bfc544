using System.Text;
using System.Text.Json.Nodes;

namespace Serving.Server.Api.OpenAi.Responses;

/// <summary>
/// A streamed Responses answer: chat's streamed deltas (reasoning, content, tool calls, as <see cref="ChatOutputWriter"/>
/// settles them) turned into OpenAI's typed events, each with its <c>sequence_number</c>. One output item is open at a
/// time, in the order the text gives them; an item opens with <c>response.output_item.added</c> (a message also with its
/// <c>output_text</c> part), grows by <c>…delta</c> events, and closes with its <c>…done</c> events when the next begins or
/// the answer ends. The items closed are the final response's <c>output</c>, with the same ids. With logprobs asked
/// (<see cref="ResponseLogprobs"/>) each text delta carries the entries of the tokens read since the one before, and the
/// text's <c>done</c> event and part all of them.
/// </summary>
internal sealed class ResponseEventStream(ServerSentEvents sse, CancellationToken ct, bool withLogprobs = false)
{
    private enum Kind { None, Reasoning, Message, Call }

    private int _sequence;
    private Kind _open;
    private string _id = "";
    private readonly StringBuilder _text = new();
    private string _callId = "", _name = "";
    private JsonArray _pendingLogprobs = [];
    private readonly JsonArray _textLogprobs = [];

    /// <summary>The entries of the tokens just read, sent with the next text delta.</summary>
    public void AddLogprobs(JsonArray entries)
    {
        foreach (var entry in entries)
            _pendingLogprobs.Add(entry!.DeepClone());
    }

    /// <summary>The items closed so far, in order.</summary>
    public JsonArray Items { get; } = [];

    public Task SendAsync(string type, JsonObject body)
    {
        body["type"] = type;
        body["sequence_number"] = _sequence++;
        return sse.SendAsync(body, ct, type);
    }

    /// <summary>The events a chat <c>delta</c> stands for.</summary>
    public async Task DeltaAsync(JsonObject delta)
    {
        if ((string?)delta["reasoning"] is { Length: > 0 } reasoning)
        {
            await OpenAsync(Kind.Reasoning);
            await GrowAsync("response.reasoning_text.delta", reasoning, content: true);
        }

        if ((string?)delta["content"] is { Length: > 0 } content)
        {
            await OpenAsync(Kind.Message);
            await GrowAsync("response.output_text.delta", content, content: true);
        }

        foreach (var call in delta["tool_calls"] as JsonArray ?? [])
        {
            if ((string?)call!["id"] is { } callId)
            {
                await CloseAsync();
                (_callId, _name) = (callId, (string?)call["function"]?["name"] ?? "");
                await OpenAsync(Kind.Call);
            }

            if ((string?)call["function"]?["arguments"] is { Length: > 0 } arguments)
                await GrowAsync("response.function_call_arguments.delta", arguments, content: false);
        }
    }

    private async Task OpenAsync(Kind kind)
    {
        if (_open == kind && kind != Kind.Call)
            return;
        await CloseAsync();
        _open = kind;
        _id = ResponseShapes.NewId(kind switch { Kind.Reasoning => "rs", Kind.Message => "msg", _ => "fc" });
        _text.Clear();
        var item = kind switch
        {
            Kind.Reasoning => new JsonObject { ["type"] = "reasoning", ["id"] = _id, ["summary"] = new JsonArray(), ["content"] = new JsonArray() },
            Kind.Message => ResponseShapes.Message(_id, null, "in_progress"),
            _ => ResponseShapes.FunctionCall(_id, _callId, _name, "", "in_progress"),
        };
        await SendAsync("response.output_item.added", new JsonObject { ["output_index"] = Items.Count, ["item"] = item });
        if (kind == Kind.Message)
            await SendAsync("response.content_part.added", Part(new JsonObject { ["part"] = ResponseShapes.OutputText("") }));
    }

    private Task GrowAsync(string type, string delta, bool content)
    {
        _text.Append(delta);
        var body = new JsonObject { ["item_id"] = _id, ["output_index"] = Items.Count, ["delta"] = delta };
        if (content)
            body["content_index"] = 0;
        if (type == "response.output_text.delta")
        {
            body["logprobs"] = _pendingLogprobs;
            foreach (var entry in _pendingLogprobs)
                _textLogprobs.Add(entry!.DeepClone());
            _pendingLogprobs = [];
        }

        return SendAsync(type, body);
    }

    /// <summary>Closes the open item, if any: its <c>…done</c> events, and it joins <see cref="Items"/>.</summary>
    public async Task CloseAsync()
    {
        string text = _text.ToString();
        JsonObject item;
        switch (_open)
        {
            case Kind.None:
                return;
            case Kind.Reasoning:
                await SendAsync("response.reasoning_text.done", Part(new JsonObject { ["text"] = text }));
                item = ResponseShapes.Reasoning(_id, text);
                break;
            case Kind.Message:
                foreach (var entry in _pendingLogprobs.ToList())
                {
                    _pendingLogprobs.Remove(entry);
                    _textLogprobs.Add(entry);
                }

                await SendAsync("response.output_text.done", Part(new JsonObject { ["text"] = text, ["logprobs"] = _textLogprobs.DeepClone() }));
                var part = ResponseShapes.OutputText(text);
                if (withLogprobs)
                    part["logprobs"] = _textLogprobs.DeepClone();
                await SendAsync("response.content_part.done", Part(new JsonObject { ["part"] = part.DeepClone() }));
                item = ResponseShapes.Message(_id, null, "completed");
                ((JsonArray)item["content"]!).Add(part);
                _textLogprobs.Clear();
                break;
            default:
                await SendAsync("response.function_call_arguments.done",
                    new JsonObject { ["item_id"] = _id, ["output_index"] = Items.Count, ["name"] = _name, ["arguments"] = text });
                item = ResponseShapes.FunctionCall(_id, _callId, _name, text, "completed");
                break;
        }

        await SendAsync("response.output_item.done", new JsonObject { ["output_index"] = Items.Count, ["item"] = item.DeepClone() });
        Items.Add(item);
        _open = Kind.None;
    }

    private JsonObject Part(JsonObject body)
    {
        body["item_id"] = _id;
        body["output_index"] = Items.Count;
        body["content_index"] = 0;
        return body;
    }
}
