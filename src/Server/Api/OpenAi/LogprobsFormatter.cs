using System.Text.Json.Nodes;
using Serving.Runtime.Hosting;
using Serving.Contracts.Generation;

namespace Serving.Server.Api.OpenAi;

/// <summary>OpenAI's two logprobs shapes: the legacy completions one and the chat one.</summary>
internal static class LogprobsFormatter
{
    public static JsonObject Completion(IReadOnlyList<TokenEvent> events, LogprobTokens names, int textOffset)
    {
        var tokens = new JsonArray();
        var logprobs = new JsonArray();
        var top = new JsonArray();
        var offsets = new JsonArray();
        int offset = textOffset;
        foreach (var e in events)
        {
            tokens.Add(names.Name(e.Token.Id));
            logprobs.Add(e.Token.Logprob);
            var alternatives = new JsonObject();
            foreach (var (id, lp) in e.Token.TopLogprobs)
                alternatives[names.Name(id)] ??= lp;
            top.Add(alternatives);
            offsets.Add(offset);
            offset += e.TextDelta.Length;
        }

        return new JsonObject { ["tokens"] = tokens, ["token_logprobs"] = logprobs, ["top_logprobs"] = top, ["text_offset"] = offsets };
    }

    /// <summary>
    /// vLLM's <c>prompt_logprobs</c>: one entry per prompt token, null for the first; each an object from token ids (as
    /// strings) to <c>{"logprob", "rank", "decoded_token"}</c> — the prompt token itself, then the most likely alternatives.
    /// </summary>
    public static JsonArray Prompt(IReadOnlyList<PromptTokenLogprob?> scores, ServedModel model)
    {
        var entries = new JsonArray();
        foreach (var score in scores)
        {
            if (score is null)
            {
                entries.Add(null);
                continue;
            }

            var entry = new JsonObject { [score.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)] = Scored(model, score.Id, score.Logprob, score.Rank) };
            for (int i = 0; i < score.TopLogprobs.Count; i++)
            {
                var (id, logprob) = score.TopLogprobs[i];
                entry[id.ToString(System.Globalization.CultureInfo.InvariantCulture)] ??= Scored(model, id, logprob, i + 1);
            }

            entries.Add(entry);
        }

        return entries;
    }

    /// <summary>
    /// The legacy completions shape for an echoed prompt (<c>echo</c> with <c>logprobs</c>): its tokens, their scores (null
    /// for the first, which nothing predicts), the top alternatives, offsets from 0 into the echoed text.
    /// </summary>
    public static JsonObject EchoedPrompt(IReadOnlyList<int> prompt, IReadOnlyList<PromptTokenLogprob?> scores, LogprobTokens names)
    {
        var tokens = new JsonArray();
        var logprobs = new JsonArray();
        var top = new JsonArray();
        var offsets = new JsonArray();
        int offset = 0;
        for (int i = 0; i < prompt.Count; i++)
        {
            tokens.Add(names.Name(prompt[i]));
            offsets.Add(offset);
            offset += names.Model.TokenText(prompt[i]).Length;
            if (scores[i] is not { } score)
            {
                logprobs.Add(null);
                top.Add(null);
                continue;
            }

            logprobs.Add(score.Logprob);
            var alternatives = new JsonObject();
            foreach (var (id, lp) in score.TopLogprobs)
                alternatives[names.Name(id)] ??= lp;
            top.Add(alternatives);
        }

        return new JsonObject { ["tokens"] = tokens, ["token_logprobs"] = logprobs, ["top_logprobs"] = top, ["text_offset"] = offsets };
    }

    /// <summary>Appends <paramref name="more"/>'s lists to <paramref name="logprobs"/>'s (an echoed prompt's, then the output's).</summary>
    public static JsonObject Concat(JsonObject logprobs, JsonObject more)
    {
        foreach (string key in (ReadOnlySpan<string>)["tokens", "token_logprobs", "top_logprobs", "text_offset"])
            foreach (var item in more[key]!.AsArray())
                logprobs[key]!.AsArray().Add(item?.DeepClone());

        return logprobs;
    }

    private static JsonObject Scored(ServedModel model, int id, float logprob, int rank) => new()
    {
        ["logprob"] = logprob,
        ["rank"] = rank,
        ["decoded_token"] = model.TokenText(id),
    };

    public static JsonObject Chat(IReadOnlyList<TokenEvent> events, LogprobTokens names)
    {
        var content = new JsonArray();
        foreach (var e in events)
        {
            var top = new JsonArray();
            foreach (var (id, lp) in e.Token.TopLogprobs)
                top.Add(Entry(names, id, lp));
            var entry = Entry(names, e.Token.Id, e.Token.Logprob);
            entry["top_logprobs"] = top;
            content.Add(entry);
        }

        return new JsonObject { ["content"] = content };
    }

    private static JsonObject Entry(LogprobTokens names, int id, float logprob) => new()
    {
        ["token"] = names.Name(id),
        ["logprob"] = logprob,
        ["bytes"] = new JsonArray(names.Bytes(id).Select(b => (JsonNode)(int)b).ToArray()),
    };
}
