using Serving.Batching.Scheduling;

namespace Serving.Batching.PrefixCaching;

/// <summary>
/// The scheduler's use of the allocator's cached blocks: what a request reuses at admission, which of its blocks are cached
/// after a step, and vLLM's query and hit counts. Engine loop only, except the counts (thread-safe).
/// </summary>
/// <param name="kv">The one owner of block ids, and of which are cached under which key.</param>
/// <param name="enabled">False: nothing is reused, cached or counted (<see cref="BatchingOptions.PrefixCaching"/>).</param>
internal sealed class PrefixCache(KvBlockAllocator kv, bool enabled)
{
    private long _queries, _hits;

    /// <summary>Prompt tokens looked up at admissions (vLLM's <c>prefix_cache_queries</c>).</summary>
    public long Queries => Interlocked.Read(ref _queries);

    /// <summary>Of those, tokens whose KV was reused (vLLM's <c>prefix_cache_hits</c>).</summary>
    public long Hits => Interlocked.Read(ref _hits);

    /// <summary>
    /// Takes the cached blocks of <paramref name="r"/>'s longest cached prefix into its (empty) block table; returns how
    /// many. At least the last token is always computed, since its logits give the first output token.
    /// </summary>
    public int Reuse(ScheduledRequest r) =>
        enabled && r.BlockKeys.Count > 0 ? kv.Reuse(r.BlockKeys, (r.Length - 1) / kv.BlockSize, r.Blocks) : 0;

    /// <summary>Counts an admission of <paramref name="r"/> that reused its first <paramref name="cachedTokens"/> tokens.</summary>
    public void Count(ScheduledRequest r, int cachedTokens)
    {
        if (!enabled)
            return;
        Interlocked.Add(ref _queries, r.PromptTokens);
        Interlocked.Add(ref _hits, cachedTokens);
    }

    /// <summary>Caches the blocks the engine has now written in full under their keys (a reused block is never written).</summary>
    public void CacheFullBlocks(ScheduledRequest r)
    {
        if (!enabled)
            return;
        int full = Math.Min(r.Computed / kv.BlockSize, r.BlockKeys.Count);
        for (; r.RegisteredBlocks < full; r.RegisteredBlocks++)
            kv.Register(r.Blocks[r.RegisteredBlocks], r.BlockKeys[r.RegisteredBlocks]);
    }
}
