namespace Serving.Server.Api.OpenAi;

/// <summary>
/// <c>Serving:Chat</c>: how chat completions read a model's output. Command line: <c>--tool-call-parser</c>,
/// <c>--reasoning-parser</c>, <c>--structured-outputs-config</c>.
/// </summary>
public sealed class ChatOptions
{
    public const string Section = "Serving:Chat";

    /// <summary>
    /// How the model writes a tool call, for <c>tool_choice: "auto"</c>: <c>none</c> (its text is the message's content),
    /// <c>hermes</c> (Hermes, Qwen 2.5/3), <c>llama3_json</c> (Llama 3.1–3.3), <c>mistral</c>, <c>deepseek_v3</c> (V3, R1, V3.1), <c>pythonic</c> (Llama 3.2's pythonic template, Llama 4), <c>granite</c> (IBM Granite 3), <c>openai</c> (gpt-oss, with the <c>openai_gptoss</c> reasoning parser). Forced calls
    /// (<c>required</c>, a named function) are read whatever this is.
    /// </summary>
    public string ToolCallParser { get; set; } = Tools.ToolCallParsers.None;

    /// <summary>
    /// How the model marks its reasoning, returned apart from the answer as <c>reasoning</c>: <c>none</c> (it is part of the
    /// content), <c>deepseek_r1</c> (DeepSeek-R1 and its distills, QwQ), <c>qwen3</c> (Qwen3, which thinks unless the
    /// request's <c>chat_template_kwargs</c> set <c>enable_thinking</c> false), <c>openai_gptoss</c> (gpt-oss's harmony
    /// channels: analysis is the reasoning, final the content; with the <c>openai</c> tool-call parser, its messages to
    /// <c>functions.*</c> the calls).
    /// </summary>
    public string ReasoningParser { get; set; } = Reasoning.ReasoningParsers.None;

    /// <summary>
    /// Whether a request's format (<c>response_format</c>, <c>structured_outputs</c>) holds a reasoning model's whole text,
    /// its reasoning included (vLLM's <c>enable_in_reasoning</c>). By default the reasoning runs free and the format holds
    /// the answer after it: the text after <c>&lt;/think&gt;</c>, or gpt-oss's final channel.
    /// </summary>
    public bool StructuredOutputsInReasoning { get; set; }

    /// <summary>
    /// Whether logprobs name tokens <c>token_id:{id}</c> when a request's <c>return_tokens_as_token_ids</c> does not say
    /// (vLLM's <c>--return-tokens-as-token-ids</c>), in chat and completions alike; default false: by their text.
    /// </summary>
    public bool ReturnTokensAsTokenIds { get; set; }

    public IEnumerable<string> Validate()
    {
        if (!Reasoning.ReasoningParsers.Names.Contains(ReasoningParser))
            yield return $"{Section}:ReasoningParser must be one of {string.Join(", ", Reasoning.ReasoningParsers.Names)}, not '{ReasoningParser}'";
        if (!Tools.ToolCallParsers.Names.Contains(ToolCallParser))
            yield return $"{Section}:ToolCallParser must be one of {string.Join(", ", Tools.ToolCallParsers.Names)}, not '{ToolCallParser}'";
        bool harmony = ReasoningParser == Reasoning.ReasoningParsers.Harmony;
        if (ToolCallParser == Tools.ToolCallParsers.Harmony && !harmony)
            yield return $"{Section}:ToolCallParser 'openai' reads gpt-oss's harmony messages, which the reasoning parser 'openai_gptoss' reads: set ReasoningParser to it";
        if (harmony && ToolCallParser is not (Tools.ToolCallParsers.None or Tools.ToolCallParsers.Harmony))
            yield return $"{Section}:ReasoningParser 'openai_gptoss' reads gpt-oss's calls from its harmony messages: set ToolCallParser to 'openai' or 'none', not '{ToolCallParser}'";
    }
}
