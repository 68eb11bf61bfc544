using System.Security.Cryptography;


namespace Serving.Server.Api.OpenAi.Tools;

/// <summary>
/// The tool-call parsers a server may be started with (<c>--tool-call-parser</c>, vLLM's names), and the reader each
/// chat choice's text goes through.
/// </summary>
internal static class ToolCallParsers
{
    public const string None = "none";

    /// <summary>Every accepted name.</summary>
    public static readonly IReadOnlyList<string> Names = [None, "hermes", "llama3_json", "mistral", "deepseek_v3", "pythonic", "granite", Harmony];

    /// <summary>gpt-oss's calls, messages to <c>functions.NAME</c> read by the harmony reader (with <c>--reasoning-parser openai_gptoss</c>).</summary>
    public const string Harmony = "openai";

    /// <summary>
    /// Whether the parser's markers are special tokens the text must keep (vLLM's parsers set
    /// <c>skip_special_tokens: false</c> for the same reason).
    /// </summary>
    public static bool ShowsSpecialTokens(string parser) => parser is "hermes" or "mistral" or "deepseek_v3" or "pythonic" or "granite" or Harmony;

    /// <summary>
    /// The reader for a choice's text: a forced call's or list's whatever the parser, the parser's own when the model
    /// decides, none when no call can be read (the text is all content).
    /// </summary>
    public static ToolCallReader? For(ToolChoice choice, string parser, ChatOutput output)
    {
        Func<string> ids = parser == "mistral" ? MistralId : OpenAiId;
        return choice.Kind switch
        {
            ToolChoiceKind.Named => new NamedToolCallReader(output, ids, choice.Function!),
            ToolChoiceKind.Required => new CallListReader(output, ids),
            ToolChoiceKind.Auto => parser switch
            {
                "hermes" => new HermesToolCallReader(output, ids),
                "llama3_json" => new Llama3JsonToolCallReader(output, ids),
                "mistral" => new MistralToolCallReader(output, ids),
                "deepseek_v3" => new DeepSeekToolCallReader(output, ids),
                "pythonic" => new PythonicToolCallReader(output, ids),
                "granite" => new MistralToolCallReader(output, ids, MistralToolCallReader.GraniteMarker),
                _ => null,
            },
            _ => null,
        };
    }

    public static string OpenAiId() => "chatcmpl-tool-" + Guid.NewGuid().ToString("N");

    /// <summary>Mistral's chat templates refuse a tool call id that is not nine letters or digits.</summary>
    private static string MistralId() => RandomNumberGenerator.GetString("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 9);
}
