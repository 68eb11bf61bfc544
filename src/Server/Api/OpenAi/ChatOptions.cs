namespace Serving.Server.Api.OpenAi;

/// <summary><c>Serving:Chat</c>: how chat completions read a model's output. Command line: <c>--tool-call-parser</c>.</summary>
public sealed class ChatOptions
{
    public const string Section = "Serving:Chat";

    /// <summary>
    /// How the model writes a tool call, for <c>tool_choice: "auto"</c>: <c>none</c> (its text is the message's content),
    /// <c>hermes</c> (Hermes, Qwen 2.5/3), <c>llama3_json</c> (Llama 3.1–3.3), <c>mistral</c>. Forced calls
    /// (<c>required</c>, a named function) are read whatever this is.
    /// </summary>
    public string ToolCallParser { get; set; } = Tools.ToolCallParsers.None;

    public IEnumerable<string> Validate()
    {
        if (!Tools.ToolCallParsers.Names.Contains(ToolCallParser))
            yield return $"{Section}:ToolCallParser must be one of {string.Join(", ", Tools.ToolCallParsers.Names)}, not '{ToolCallParser}'";
    }
}
