using System.Text.Json.Nodes;
using Serving.Contracts.Generation;
using Serving.Server.Api.OpenAi.Tools;
using Serving.Server.Requests;

namespace Serving.Server.Api.OpenAi;

/// <summary>
/// One choice of a chat completion: its tokens (<see cref="Result"/>), the reading of its text into reasoning, content
/// and tool calls, and its JSON — whole, or one streamed chunk per token event.
/// </summary>
internal sealed class ChatChoice
{
    private readonly ChatOutput _output = new();
    private readonly ChatTextReader? _reader;
    private readonly ChatOutputWriter _writer;
    private readonly ToolChoice _tools;

    /// <param name="result">Where its tokens gather.</param>
    /// <param name="tools">The request's tools and tool choice.</param>
    /// <param name="options">The server's parsers.</param>
    /// <param name="thinks">Whether its text starts inside the model's reasoning.</param>
    /// <param name="includeReasoning">vLLM's <c>include_reasoning</c>.</param>
    public ChatChoice(ChoiceResult result, ToolChoice tools, ChatOptions options, bool thinks, bool includeReasoning)
    {
        Result = result;
        _tools = tools;
        _reader = ChatTextReader.For(_output, tools, options, thinks);
        _writer = new ChatOutputWriter(_output, tools.Parallel, includeReasoning);
    }

    public ChoiceResult Result { get; }

    /// <summary>The whole choice, once every event has been added to <see cref="Result"/>.</summary>
    /// <param name="logprobs">The choice's logprobs, or null.</param>
    /// <param name="returnIds">vLLM's <c>return_token_ids</c>.</param>
    /// <param name="echoed">vLLM's chat <c>echo</c>: the final assistant message's text, which the content then starts with.</param>
    public JsonObject Whole(JsonObject? logprobs, bool returnIds, string echoed = "")
    {
        if (_reader is null)
            _output.Content.Append(Result.Text);
        else
        {
            _reader.Push(Result.Text.ToString());
            _reader.Finish();
        }

        var message = _writer.Message();
        if (echoed.Length > 0)
            message["content"] = echoed + (string?)message["content"];
        var choice = new JsonObject
        {
            ["index"] = Result.Index,
            ["message"] = message,
            ["logprobs"] = logprobs,
            ["finish_reason"] = FinishName(Result.Finish),
        };
        if (returnIds)
            choice["token_ids"] = CompletionsEndpoint.Ids(Result.TokenIds);
        if (Result.Events.Count > 0 && ChoiceResult.IncompleteDetails(Result.Events[^1]) is { } incomplete)
            choice["incomplete_details"] = incomplete;
        return choice;
    }

    /// <summary>The streamed opening: the assistant's role, and the <paramref name="echoed"/> text (chat's <c>echo</c>).</summary>
    public JsonObject Opening(string echoed = "") => Chunk(new JsonObject { ["role"] = "assistant", ["content"] = echoed }, null, null);

    /// <summary>
    /// Adds <paramref name="e"/> and returns its chunk's choice, or null when the readers hold its text until they know
    /// what it is and there is nothing else to say.
    /// </summary>
    public JsonObject? Next(TokenEvent e, JsonObject? logprobs)
    {
        Result.Add(e);
        JsonObject delta;
        if (_reader is null)
            delta = new JsonObject { ["content"] = e.TextDelta };
        else
        {
            _reader.Push(e.TextDelta);
            if (e.Finish != FinishReason.None)
                _reader.Finish();
            delta = _writer.NextDelta();
            if (delta.Count == 0 && logprobs is null && e.Finish == FinishReason.None)
                return null;
        }

        var chunk = Chunk(delta, logprobs, FinishName(e.Finish));
        if (ChoiceResult.IncompleteDetails(e) is { } incomplete)
            chunk["incomplete_details"] = incomplete;
        return chunk;
    }

    private JsonObject Chunk(JsonObject delta, JsonObject? logprobs, string? finish) =>
        new() { ["index"] = Result.Index, ["delta"] = delta, ["logprobs"] = logprobs, ["finish_reason"] = finish };

    /// <summary>
    /// OpenAI's finish reasons: <c>tool_calls</c> when the model's own or a <c>required</c> choice ended in calls;
    /// a named function's forced call ends with <c>stop</c>, as OpenAI and vLLM report it; <c>length</c> stays.
    /// </summary>
    private string? FinishName(FinishReason finish) =>
        finish == FinishReason.Stop && _tools.Kind != ToolChoiceKind.Named && _writer.CalledTools ? "tool_calls" : ChoiceResult.FinishName(finish);
}
