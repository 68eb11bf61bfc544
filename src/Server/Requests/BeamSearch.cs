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

    /// <summary>Runs each prompt's search and gives prompt p's beams, best first, to choices p·width … p·width + width − 1.</summary>
    /// <param name="client">The engine.</param>
    /// <param name="copies">The request stage's requests, <paramref name="search"/>.Width per prompt (copy 0 is run).</param>
    /// <param name="search">Width and length penalty.</param>
    /// <param name="results">Where each choice's tokens go, as if generated.</param>
    /// <param name="model">Its end-of-sequence tokens and its decoder.</param>
    /// <param name="ct">The caller going away.</param>
    public static Task FillAsync(GenerationClient client, IReadOnlyList<GenerationRequest> copies, BeamSearchRequest search,
        IReadOnlyList<ChoiceResult> results, ServedModel model, CancellationToken ct)
    {
        int width = search.Width;
        var ends = model.EndOfSequenceTokenIds.ToHashSet();
        return Task.WhenAll(Enumerable.Range(0, copies.Count / width).Select(async p =>
        {
            var request = copies[p * width];
            var beams = await RunAsync(client, request, search, ends, ct);
            for (int j = 0; j < beams.Count; j++)
                Give(beams[j], request.Sampling, results[p * width + j], model);
        }));
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

    /// <summary>Hands a beam to its choice as generated tokens: the text as the output's decode, the finish as the beam ended.</summary>
    private static void Give(Beam beam, SamplingParams sampling, ChoiceResult result, ServedModel model)
    {
        var output = beam.Output();
        int count = beam.Ended && !sampling.IncludeStopStringInOutput ? output.Length - 1 : output.Length;
        string text = model.Decode(output.Take(count).Select(o => o.Token), sampling.SkipSpecialTokens);
        var finish = beam.Ended ? FinishReason.Stop : FinishReason.Length;
        if (count == 0)
        {
            result.Finish = finish;
            return;
        }

        for (int i = 0; i < count; i++)
            result.Add(new TokenEvent(new SampledToken(output[i].Token, output[i].Logprob, []), i == count - 1 ? text : "",
                i == count - 1 ? finish : FinishReason.None));
    }
}
