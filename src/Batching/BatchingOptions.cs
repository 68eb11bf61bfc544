namespace Serving.Batching;

/// <summary><c>Serving:Batching</c>: how the scheduler forms batches and where it pushes back.</summary>
public sealed class BatchingOptions
{
    public const string Section = "Serving:Batching";

    public AdmissionPolicy Policy { get; set; } = AdmissionPolicy.Continuous;

    /// <summary>
    /// The order of admission and preemption: <see cref="SchedulingPolicy.Fcfs"/> (default), or
    /// <see cref="SchedulingPolicy.Priority"/> by each request's <c>priority</c> (vLLM's <c>--scheduling-policy</c>).
    /// </summary>
    public SchedulingPolicy SchedulingPolicy { get; set; } = SchedulingPolicy.Fcfs;

    /// <summary>
    /// Prompt tokens prefilled per engine step across all sequences (chunked prefill), so running streams keep getting a
    /// token every step while long prompts are read. 0 = whole prompts in one step.
    /// </summary>
    public int MaxPrefillTokensPerStep { get; set; } = 512;

    /// <summary>
    /// Requests waiting for admission, beyond the batch's free seats, before new ones are rejected with 429. A short queue
    /// bounds the latency of what is admitted under overload (see docs/reliability.md); a burst that fits the free seats is
    /// always accepted.
    /// </summary>
    public int MaxQueuedRequests { get; set; } = 256;

    /// <summary>Prompt tokens waiting for admission, summed, before new requests are rejected with 429.</summary>
    public long MaxQueuedTokens { get; set; } = 1 << 20;

    /// <summary>Running sequences one tenant may hold at once; 0 = no limit. Its further requests wait without blocking other tenants.</summary>
    public int MaxRunningPerTenant { get; set; }

    /// <summary>
    /// Anti-starvation bound: once a waiting request has been held back this many steps (for lack of rows, an adapter slot
    /// or KV memory; not for its own tenant's limit or its adapter's read), nothing that arrived after it is admitted until it
    /// runs, so running requests drain and free what it needs (LoRAX's adapter cycle plays the same role). It then starts
    /// within this many steps plus the time the requests ahead of it and the running ones take to finish.
    /// </summary>
    public int StarvationSteps { get; set; } = 64;

    /// <summary>Tokens per KV cache block, the unit of KV memory accounting.</summary>
    public int KvBlockSize { get; set; } = 16;

    /// <summary>
    /// KV cache capacity in tokens across all sequences (rounded up to whole blocks): the memory of that many positions of every
    /// layer; 0 = what max sequences at max context hold at once, which never preempts. Smaller budgets admit more sequences than
    /// could all reach the context limit and preempt the youngest when full. A model with sliding layers in KV groups of their
    /// own holds fewer blocks per sequence, so the same memory holds more tokens (and the default takes less memory).
    /// </summary>
    public int KvCacheTokens { get; set; }

    /// <summary>
    /// Keep full prompt blocks' KV after their sequence ends and reuse it for later prompts with the same prefix, model,
    /// adapter versions, tenant and <c>cache_salt</c> (unreferenced cached blocks are taken back, least recently used
    /// first, whenever a sequence needs a block).
    /// </summary>
    public bool PrefixCaching { get; set; } = true;

    /// <summary>
    /// Keep a model's sliding-window layers' KV in KV groups of their own whose blocks behind the window go back to the pool
    /// (vLLM's hybrid KV cache manager; gpt-oss, Gemma 2/3, Mistral). False (vLLM's <c>--disable-hybrid-kv-cache-manager</c>):
    /// every layer keeps every position, as before groups.
    /// </summary>
    public bool HybridKvCache { get; set; } = true;

    /// <summary>Longest a request may take from arrival to its last token; 0 = no limit. Past it, the request ends with a timeout.</summary>
    public double RequestTimeoutSeconds { get; set; }

    /// <summary>
    /// These options for a model whose attention is bidirectional: each prompt prefilled whole in one step (a chunk could
    /// not see the positions after it) and no prefix caching (a prefix's KV depends on what follows it).
    /// </summary>
    public BatchingOptions ForBidirectionalAttention()
    {
        var options = (BatchingOptions)MemberwiseClone();
        options.MaxPrefillTokensPerStep = 0;
        options.PrefixCaching = false;
        return options;
    }

    /// <summary>Messages for invalid settings (empty when valid).</summary>
    public IEnumerable<string> Validate()
    {
        if (MaxPrefillTokensPerStep < 0)
            yield return "Serving:Batching:MaxPrefillTokensPerStep must be ≥ 0";
        if (MaxQueuedRequests < 1)
            yield return "Serving:Batching:MaxQueuedRequests must be ≥ 1";
        if (MaxQueuedTokens < 1)
            yield return "Serving:Batching:MaxQueuedTokens must be ≥ 1";
        if (MaxRunningPerTenant < 0)
            yield return "Serving:Batching:MaxRunningPerTenant must be ≥ 0";
        if (StarvationSteps < 1)
            yield return "Serving:Batching:StarvationSteps must be ≥ 1";
        if (KvBlockSize is < 1 or > 1024)
            yield return "Serving:Batching:KvBlockSize must be within 1..1024";
        if (KvCacheTokens < 0)
            yield return "Serving:Batching:KvCacheTokens must be ≥ 0";
        if (!Enum.IsDefined(SchedulingPolicy))
            yield return "Serving:Batching:SchedulingPolicy must be fcfs or priority";
        if (RequestTimeoutSeconds < 0 || !double.IsFinite(RequestTimeoutSeconds))
            yield return "Serving:Batching:RequestTimeoutSeconds must be ≥ 0";
    }
}
