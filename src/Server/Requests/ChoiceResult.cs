using Serving.Contracts.Generation;

namespace Serving.Server.Requests;

/// <summary>Everything one choice produced: text, token ids, per-token logprobs and why it ended.</summary>
/// <param name="index">The choice's index in the response.</param>
/// <param name="promptTokens">Its prompt's length.</param>
/// <param name="firstOfPrompt">False for the second and later of <c>n</c> choices of one prompt, whose prompt usage counts once.</param>
internal sealed class ChoiceResult(int index, int promptTokens, bool firstOfPrompt = true)
{
    public int Index { get; } = index;
    public int PromptTokens { get; } = promptTokens;
    public bool FirstOfPrompt { get; } = firstOfPrompt;
    public System.Text.StringBuilder Text { get; } = new();
    public List<int> TokenIds { get; } = [];
    public List<TokenEvent> Events { get; } = [];
    public FinishReason Finish { get; set; }

    /// <summary>A constrained output ended before it was complete (see <see cref="IncompleteDetails"/>).</summary>
    public bool OutputIncomplete { get; private set; }

    /// <summary>Prompt tokens whose KV came from the prefix cache (OpenAI's <c>prompt_tokens_details.cached_tokens</c>).</summary>
    public int CachedTokens { get; private set; }

    /// <summary>How the request's predicted output fared as drafts, once the choice has ended; null without one.</summary>
    public PredictionTokens? Prediction { get; private set; }

    public static string? FinishName(FinishReason reason) => reason switch
    {
        FinishReason.Stop => "stop",
        FinishReason.Length => "length",
        _ => null,
    };

    public void Add(TokenEvent e)
    {
        if (Events.Count == 0)
            CachedTokens = e.CachedPromptTokens;
        Events.Add(e);
        TokenIds.Add(e.Token.Id);
        Text.Append(e.TextDelta);
        if (e.Finish != FinishReason.None)
        {
            Finish = e.Finish;
            OutputIncomplete = e.OutputIncomplete;
            Prediction = e.Prediction;
        }
    }

    /// <summary>
    /// The choice's <c>incomplete_details</c> when a structured output ended before it matched its format (max_tokens,
    /// the context limit or a stop string came first): the text is a prefix of a valid output, never to be taken as one.
    /// </summary>
    public static System.Text.Json.Nodes.JsonObject? IncompleteDetails(TokenEvent e) => e.OutputIncomplete
        ? new() { ["reason"] = FinishName(e.Finish), ["message"] = "the output ended before it matched the requested format; it is not valid output" }
        : null;
}
