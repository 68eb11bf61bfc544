namespace Serving.Batching;

/// <summary><c>Serving:Batching</c>: how the engine loop forms batches.</summary>
internal sealed class BatchingOptions
{
    public const string Section = "Serving:Batching";

    public AdmissionPolicy Policy { get; set; } = AdmissionPolicy.Continuous;

    /// <summary>
    /// Prompt tokens prefilled per engine step across all new requests (chunked prefill), so running streams keep
    /// getting a token every step while long prompts are read. 0 = whole prompts in one step.
    /// </summary>
    public int MaxPrefillTokensPerStep { get; set; } = 512;
}
