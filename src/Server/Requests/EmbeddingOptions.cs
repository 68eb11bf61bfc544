namespace Serving.Server.Requests;

/// <summary>
/// <c>Serving:Embeddings</c>: whether a generative model's hidden states are served as embeddings. An embedding model
/// (a bare transformer, or a folder declaring sentence-transformers pooling) always serves them; a generative model only
/// when the operator says so (<c>--enable-embeddings</c>), since its final hidden states are what model-stealing attacks
/// recover the lm_head from, a step closer to the weights than logits — vLLM likewise serves embeddings only from models
/// run for pooling.
/// </summary>
public sealed class EmbeddingOptions
{
    public const string Section = "Serving:Embeddings";

    /// <summary>Serve <c>/v1/embeddings</c> from a generative model too (its adapters included); default false.</summary>
    public bool FromGenerativeModels { get; set; }

    /// <summary>How prompts are pooled, over the folder's sentence-transformers Pooling module (vLLM's <c>pooling_type</c>); null: the folder's, else the last token.</summary>
    public Serving.Contracts.Generation.PromptPooling? Pooling { get; set; }

    /// <summary>Whether an embedding is L2-normalised when the request does not say (its <c>normalize</c>); default true, as vLLM's.</summary>
    public bool Normalize { get; set; } = true;
}
