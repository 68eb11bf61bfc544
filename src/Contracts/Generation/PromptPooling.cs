namespace Serving.Contracts.Generation;

/// <summary>
/// How an embedding request (<see cref="SamplingParams.EmbedPrompt"/>) pools its prompt's final hidden states — the
/// sentence-transformers Pooling module's <c>pooling_mode_*</c>, vLLM's <c>pooling_type</c>.
/// </summary>
public enum PromptPooling
{
    /// <summary>The last token's state (<c>lasttoken</c>: Qwen3-Embedding, e5-mistral, gte-Qwen2).</summary>
    LastToken,

    /// <summary>The mean over every prompt position (<c>mean_tokens</c>: EmbeddingGemma, KaLM, LLM2Vec, GritLM).</summary>
    Mean,

    /// <summary>The first position's state (<c>cls_token</c>).</summary>
    Cls,
}
