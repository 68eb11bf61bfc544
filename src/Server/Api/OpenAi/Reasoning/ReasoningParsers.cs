using Serving.Contracts.Generation;

namespace Serving.Server.Api.OpenAi.Reasoning;

/// <summary>
/// The reasoning parsers a server may be started with (<c>--reasoning-parser</c>, vLLM's names). deepseek_r1 and qwen3 read
/// <c>&lt;think&gt;…&lt;/think&gt;</c> and differ in where a text without the opening tag starts; openai_gptoss reads
/// gpt-oss's harmony channels.
/// </summary>
internal static class ReasoningParsers
{
    public const string None = "none";

    public static readonly IReadOnlyList<string> Names = [None, "deepseek_r1", "qwen3", Harmony];

    /// <summary>gpt-oss's harmony messages (<see cref="HarmonyReader"/>): channels, not think tags.</summary>
    public const string Harmony = "openai_gptoss";

    /// <summary>What closes the reasoning; an output format holds only the text after it.</summary>
    public const string EndOfReasoning = "</think>";

    /// <summary>
    /// The reasoning a format does not hold (unless <see cref="ChatOptions.StructuredOutputsInReasoning"/>): a think
    /// model's text up to <see cref="EndOfReasoning"/>; gpt-oss's messages up to its final channel's body (vLLM's harmony
    /// reasoning parser reads the same end: <c>&lt;|channel|&gt;final</c>, anything such as <c>&lt;|constrain|&gt;json</c>,
    /// then <c>&lt;|message|&gt;</c>), harmony's markers being special tokens the free text may hold.
    /// </summary>
    public static readonly FreeTextPrefix ThinkPrefix = FreeTextPrefix.Until(EndOfReasoning, whitespaceAfter: 8);

    /// <inheritdoc cref="ThinkPrefix"/>
    public static readonly FreeTextPrefix HarmonyPrefix = new(["<|channel|>final", "<|message|>"],
        ["<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|constrain|>"]);

    /// <summary>The reasoning an output held to a format may begin with under <paramref name="parser"/>; null: none.</summary>
    public static FreeTextPrefix? FreeReasoning(string parser, bool startsInReasoning) =>
        parser == Harmony ? HarmonyPrefix : startsInReasoning ? ThinkPrefix : null;

    /// <summary>
    /// Whether the model's text begins inside its reasoning: always for DeepSeek-R1 (its template opens the block); for
    /// Qwen3 unless the request's <c>enable_thinking</c> is false. Such a text runs free until <see cref="EndOfReasoning"/>
    /// even when the output is held to a format.
    /// </summary>
    public static bool StartsInReasoning(string parser, bool thinkingDisabled) =>
        parser switch
        {
            "deepseek_r1" => true,
            "qwen3" => !thinkingDisabled,
            _ => false,
        };
}
