using Serving.Contracts.Generation;
using Serving.Runtime.Generation;
using Serving.Server.Api;
using Serving.Server.Security;

namespace Serving.Server.Requests;

/// <summary>
/// Embeds prompts for both front doors (<c>/v1/embeddings</c>, gRPC <c>Embed</c>): each runs as an engine request that
/// returns its last token's final hidden state (<see cref="SamplingParams.EmbedPrompt"/>), at most
/// <see cref="InputsInFlight"/> of one call at a time — so a call of many inputs is neither refused for the queue's bound
/// nor queued ahead of everyone — then cut to <c>dimensions</c> and L2-normalised as asked.
/// </summary>
internal sealed class PromptEmbedder(GenerationRequestStage stage, GenerationClient client, Microsoft.Extensions.Options.IOptions<EmbeddingOptions> options)
{
    /// <summary>The most inputs one call may hold (OpenAI's bound).</summary>
    public const int MaxInputs = 2048;

    private const int InputsInFlight = 32;

    /// <summary>Whether an embedding is L2-normalised when its request does not say (<see cref="EmbeddingOptions.Normalize"/>).</summary>
    public bool NormalizesByDefault => options.Value.Normalize;

    /// <summary>
    /// A REST request's embeddings: its <c>model</c>, <c>truncate_prompt_tokens</c>, <c>add_special_tokens</c> (default true),
    /// <c>cache_salt</c> and <c>priority</c> read as every embedding front door reads them; <paramref name="readInputs"/>
    /// reads the texts with the tokenizer it is given. Returns the vectors, the prompts and the model's name.
    /// </summary>
    /// <param name="f">The request's fields.</param>
    /// <param name="caller">Who asks.</param>
    /// <param name="readInputs">Reads the prompts with the tokenizer (text, add_special_tokens as asked) it is given.</param>
    /// <param name="dimensions">Matryoshka: the first dimensions only; null: all.</param>
    /// <param name="normalize">L2-normalise each vector.</param>
    /// <param name="ct">Cancels the call.</param>
    /// <param name="forScores">
    /// The hidden states stay in the server, which returns only a score made of two token logits (<see cref="TokenClassifier"/>):
    /// no more than a generation's logprobs tell, so a generative model serves them without <c>--enable-embeddings</c>.
    /// </param>
    public async Task<(float[][] Vectors, IReadOnlyList<IReadOnlyList<int>> Inputs, string Model)> EmbedAsync(JsonFields f, Caller caller,
        Func<Func<string, bool, int[]>, IReadOnlyList<IReadOnlyList<int>>> readInputs, int? dimensions, bool normalize, CancellationToken ct,
        bool forScores = false)
    {
        var (adapters, routing, modelName) = ModelResolver.ReadTarget(f, stage, caller);
        bool addSpecialTokens = f.Bool("add_special_tokens") ?? true;
        var truncation = PromptTruncation.Read(f, stage.MaxContext, 1);
        var inputs = readInputs((text, first) => stage.TokenizePrompt(text, addSpecialTokens && first, "input", truncation));
        if (truncation is not null)
            inputs = [.. inputs.Select(truncation.Apply)];
        string? salt = GenerationRequestStage.ReadCacheSalt(f);
        int priority = stage.CheckPriority(f.Int("priority", int.MinValue, int.MaxValue), caller);
        var vectors = forScores ? await HiddenStatesAsync(inputs, adapters, routing, caller, null, salt, priority, null, false, ct, "input", forScores: true)
            : await EmbedAsync(inputs, adapters, routing, caller, null, salt, priority, dimensions, normalize, ct);
        return (vectors, inputs, modelName);
    }

    /// <summary>The embedding of each of <paramref name="inputs"/>, in order; a 400 names <paramref name="field"/> for a prompt that cannot run.</summary>
    public async Task<float[][]> EmbedAsync(IReadOnlyList<IReadOnlyList<int>> inputs, PinnedAdapters? adapters, RoutingRequest? routing, Caller caller,
        DateTimeOffset? deadline, string? cacheSalt, int priority, int? dimensions, bool normalize, CancellationToken ct, string field = "input")
    {
        if (!stage.Model.EmbeddingOnly && stage.Model.PoolingMode is null && !options.Value.FromGenerativeModels)
            throw ApiException.BadRequest("this model is a generative model: its hidden states are served as embeddings only when the server is started "
                + "with --enable-embeddings (Serving:Embeddings:FromGenerativeModels)", "model");
        return await HiddenStatesAsync(inputs, adapters, routing, caller, deadline, cacheSalt, priority, dimensions, normalize, ct, field);
    }

    /// <summary>
    /// Each prompt's final hidden states pooled and projected as the model's embedding (<paramref name="forScores"/>: its last
    /// token's raw state), shaped as asked: the embedding without the check that the model may serve one.
    /// </summary>
    private async Task<float[][]> HiddenStatesAsync(IReadOnlyList<IReadOnlyList<int>> inputs, PinnedAdapters? adapters, RoutingRequest? routing, Caller caller,
        DateTimeOffset? deadline, string? cacheSalt, int priority, int? dimensions, bool normalize, CancellationToken ct, string field, bool forScores = false)
    {
        if (inputs.Count > MaxInputs)
            throw ApiException.BadRequest($"may hold at most {MaxInputs} inputs, got {inputs.Count}", field);
        // A score reads two token logits off the last token's raw state; an embedding is pooled and projected as the folder says.
        var pooling = forScores ? PromptPooling.LastToken : options.Value.Pooling ?? stage.Model.Pooling ?? (stage.Model.PoolingMode is { } mode
            ? throw ApiException.BadRequest($"this model pools by '{mode}' (its sentence-transformers Pooling module); served: lasttoken, mean_tokens, cls_token", "model")
            : PromptPooling.LastToken);
        int size = forScores ? stage.Model.HiddenSize : stage.Model.EmbeddingSize;
        if (dimensions is < 1 || dimensions > size)
            throw ApiException.BadRequest($"must be from 1 to the model's {size} dimensions, got {dimensions}", "dimensions");
        if (inputs.Select((p, i) => (p, i)).FirstOrDefault(x => x.p.Count == 0) is { p: not null } empty)
            throw ApiException.BadRequest($"input {empty.i} has no tokens: there is nothing to embed", field);

        var sampling = new SamplingParams { Temperature = 0, MaxTokens = 1, IgnoreEos = true, EmbedPrompt = true, Pooling = pooling };
        var requests = await stage.PrepareAsync(inputs, sampling, adapters, routing, caller, deadline, ct, cacheSalt, priority: priority, promptField: field);
        var vectors = new float[requests.Count][];
        await Parallel.ForEachAsync(Enumerable.Range(0, requests.Count), new ParallelOptions { MaxDegreeOfParallelism = InputsInFlight, CancellationToken = ct },
            async (i, token) =>
            {
                await foreach (var e in client.SubmitAsync(requests[i], token))
                    if (e.Embedding is { } embedding)
                        vectors[i] = Shape(forScores ? [.. embedding] : stage.Model.FinishEmbedding([.. embedding]), dimensions, normalize);
                _ = vectors[i] ?? throw new InvalidOperationException($"input {i} finished without its embedding");
            });
        return vectors;
    }

    /// <summary>The first <paramref name="dimensions"/> of <paramref name="hidden"/> (all of it when null), L2-normalised when asked.</summary>
    internal static float[] Shape(IReadOnlyList<float> hidden, int? dimensions, bool normalize)
    {
        var vector = hidden.Take(dimensions ?? hidden.Count).ToArray();
        if (normalize)
        {
            double norm = Math.Sqrt(vector.Sum(v => (double)v * v));
            if (norm > 0)
                for (int i = 0; i < vector.Length; i++)
                    vector[i] = (float)(vector[i] / norm);
        }

        return vector;
    }
}
