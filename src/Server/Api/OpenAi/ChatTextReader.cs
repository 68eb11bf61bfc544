using Serving.Server.Api.OpenAi.Reasoning;
using Serving.Server.Api.OpenAi.Tools;

namespace Serving.Server.Api.OpenAi;

/// <summary>
/// The way a chat choice's text goes into its <see cref="ChatOutput"/>: reasoning split off first (a reasoning parser),
/// then tool calls read from the answer (a forced choice, or the tool-call parser), else the answer is the content.
/// Streaming and whole responses push through the same reader, so both give the same message.
/// </summary>
internal sealed class ChatTextReader
{
    private readonly ReasoningReader? _reasoning;
    private readonly ToolCallReader? _tools;
    private readonly HarmonyReader? _harmony;
    private readonly Action<string> _answer;

    private ChatTextReader(ReasoningReader? reasoning, ToolCallReader? tools, Action<string> answer, HarmonyReader? harmony = null)
    {
        _reasoning = reasoning;
        _tools = tools;
        _answer = answer;
        _harmony = harmony;
    }

    /// <summary>
    /// The reader for a choice, or null when the text is all content (no reasoning parser, no call to read): the caller
    /// then passes each delta through as it is.
    /// </summary>
    /// <param name="output">Where the text settles.</param>
    /// <param name="tools">The request's tools and tool choice.</param>
    /// <param name="options">The server's parsers.</param>
    /// <param name="thinks">Whether the text starts inside the model's reasoning (<see cref="ReasoningParsers.StartsInReasoning"/>).</param>
    public static ChatTextReader? For(ChatOutput output, ToolChoice tools, ChatOptions options, bool thinks)
    {
        // gpt-oss: its harmony messages carry reasoning, calls and answer alike; a forced call is JSON from the first token.
        if (options.ReasoningParser == ReasoningParsers.Harmony && !tools.Forced)
        {
            bool readsCalls = tools.Kind == ToolChoiceKind.Auto && tools.Tools.Count > 0 && options.ToolCallParser == ToolCallParsers.Harmony;
            var harmony = new HarmonyReader(output, readsCalls, ToolCallParsers.OpenAiId);
            return new ChatTextReader(null, null, harmony.Push, harmony);
        }

        var toolReader = ToolCallParsers.For(tools, options.ToolCallParser, output);
        Action<string> answer = toolReader is null ? text => output.Content.Append(text) : toolReader.Push;
        var reasoning = options.ReasoningParser == ReasoningParsers.None ? null
            : new ReasoningReader(output.Reasoning, answer, thinks);
        return reasoning is null && toolReader is null ? null : new ChatTextReader(reasoning, toolReader, answer);
    }

    public void Push(string delta)
    {
        if (_reasoning is not null)
            _reasoning.Push(delta);
        else
            _answer(delta);
    }

    public void Finish()
    {
        _harmony?.Finish();
        _reasoning?.Finish();
        _tools?.Finish();
    }
}
