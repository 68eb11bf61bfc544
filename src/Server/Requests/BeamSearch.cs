using Serving.Contracts.Generation;
using Serving.Runtime.Generation;
using Serving.Runtime.Hosting;

namespace Serving.Server.Requests;

/// <summary>
/// Beam search as vLLM's front end runs it: each step asks the engine for one token of every live beam — all of them in
/// the same batches as everyone's, sharing the prompt's KV through the prefix cache — and reads the 2·width most likely
/// next tokens of each from the raw distribution. Of all extensions, one by an end-of-sequence token completes its beam
/// (unless <c>ignore_eos</c>); the width best of the others by score live on. At the end the width best of the completed
/// and live beams are the choices, best first. Score = cumulative logprob ÷ (prompt + output tokens, an ending
/// end-of-sequence token not counted) ^ length_penalty (vLLM's <c>get_beam_search_score</c>).
/// </summary>
internal static class BeamSearch
{
    /// <summary>
    /// A beam: its last output token (an ending end-of-sequence token included) and that token's logprob, on the beam it
    /// extends (null: the prompt alone), so extending one copies nothing.
    /// </summary>
    internal sealed record Beam(Beam? Parent, int Token, float Logprob, double CumulativeLogprob, int Length, bool Ended)
    {
        public static readonly Beam Start = new(null, -1, 0f, 0, 0, false);

        /// <summary>Its output tokens with their logprobs, first to last.</summary>
        public (int Token, float Logprob)[] Output()
        {
            var output = new (int, float)[Length];
            for (var b = this; b.Parent is not null; b = b.Parent)
                output[b.Length - 1] = (b.Token, b.Logprob);
            return output;
        }

        public Beam Extend(int token, float logprob, bool ended) => new(this, token, logprob, CumulativeLogprob + logprob, Length + 1, ended);
    }

    /// <summary>
    /// Each choice's tokens as an event source, like the engine's own (<see cref="GenerationClient.SubmitAsync"/>): prompt
    /// p's search runs once, when the first of its choices p·width … p·width + width − 1 is read, and each choice then
    /// yields its beam's tokens (best first), the text with the last, so streamed and whole responses read beams as
    /// they read generated tokens.
    /// </summary>
    /// <param name="client">The engine.</param>
    /// <param name="copies">The request stage's requests, <paramref name="search"/>.Width per prompt (copy 0 is run).</param>
    /// <param name="search">Width and length penalty.</param>
    /// <param name="model">Its end-of-sequence tokens and its decoder.</param>
    /// <param name="ct">The caller going away.</param>
    public static IReadOnlyList<IAsyncEnumerable<TokenEvent>> Sources(GenerationClient client, IReadOnlyList<GenerationRequest> copies, BeamSearchRequest search,
        ServedModel model, CancellationToken ct)
    {
        int width = search.Width;
        var ends = model.EndOfSequenceTokenIds.ToHashSet();
        var searches = Enumerable.Range(0, copies.Count / width)
            .Select(p => new Lazy<Task<IReadOnlyList<Beam>>>(() => RunAsync(client, copies[p * width], search, ends, ct))).ToArray();
        return copies.Select((request, i) => Events(searches[i / width], i % width, request.Sampling, model)).ToList();
    }

    private static async IAsyncEnumerable<TokenEvent> Events(Lazy<Task<IReadOnlyList<Beam>>> search, int rank, SamplingParams sampling, ServedModel model)
    {
        var beams = await search.Value;
        if (rank >= beams.Count)
            yield break;
        foreach (var e in Tokens(beams[rank], sampling, model))
            yield return e;
    }

    /// <summary>The width best beams of <paramref name="request"/>'s search, best first.</summary>
    public static async Task<IReadOnlyList<Beam>> RunAsync(GenerationClient client, GenerationRequest request, BeamSearchRequest search,
        IReadOnlySet<int> ends, CancellationToken ct)
    {
        var step = request.Sampling with { MaxTokens = 1, MinTokens = 0, Temperature = 0, Logprobs = 2 * search.Width, IgnoreEos = true, StopStrings = [] };
        int prompt = request.PromptTokens.Count;
        double Score(Beam b) => b.CumulativeLogprob / Math.Pow(prompt + b.Length - (b.Ended ? 1 : 0), search.LengthPenalty);
        var live = new List<Beam> { Beam.Start };
        var completed = new List<Beam>();
        for (int t = 0; t < request.Sampling.MaxTokens && live.Count > 0; t++)
        {
            var nexts = await Task.WhenAll(live.Select(b =>
                NextAsync(client, request with { PromptTokens = [.. request.PromptTokens, .. b.Output().Select(o => o.Token)], Sampling = step }, ct)));
            var extensions = new List<Beam>();
            for (int i = 0; i < live.Count; i++)
                foreach (var (id, logprob) in nexts[i])
                {
                    bool ended = !request.Sampling.IgnoreEos && ends.Contains(id);
                    (ended ? completed : extensions).Add(live[i].Extend(id, logprob, ended));
                }

            live = extensions.OrderByDescending(Score).Take(search.Width).ToList();
        }

        return completed.Concat(live).OrderByDescending(Score).Take(search.Width).ToList();
    }

    /// <summary>One step of one beam: the most likely next tokens, from the engine's single-token generation.</summary>
    private static async Task<IReadOnlyList<(int Id, float Logprob)>> NextAsync(GenerationClient client, GenerationRequest request, CancellationToken ct)
    {
        IReadOnlyList<(int, float)> top = [];
        await foreach (var e in client.SubmitAsync(request, ct))
            top = e.Token.TopLogprobs;
        return top;
    }

    /// <summary>
    /// A beam as generated tokens: each with its logprob, an ending end-of-sequence token included (as the engine gives
    /// it), the text — the output's decode, without that token unless <c>include_stop_str_in_output</c> — with the last.
    /// </summary>
    private static IEnumerable<TokenEvent> Tokens(Beam beam, SamplingParams sampling, ServedModel model)
    {
        var output = beam.Output();
        int shown = beam.Ended && !sampling.IncludeStopStringInOutput ? output.Length - 1 : output.Length;
        string text = model.Decode(output.Take(shown).Select(o => o.Token), sampling.SkipSpecialTokens);
        var finish = beam.Ended ? FinishReason.Stop : FinishReason.Length;
        for (int i = 0; i < output.Length; i++)
        {
            bool last = i == output.Length - 1;
            yield return new TokenEvent(new SampledToken(output[i].Token, output[i].Logprob, []), last ? text : "", last ? finish : FinishReason.None);
        }
    }
}
