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
    /// Takes the cached blocks of <paramref name="r"/>'s longest cached prefix into its (empty) block tables; returns how
    /// many blocks of positions it covers. At least the last token is always computed, since its logits give the first
    /// output token. A prefix of n blocks is cached when every whole-context group has blocks 0 … n − 1 and every sliding
    /// group the blocks the window of position n·BlockSize reaches (vLLM's hybrid prefix hit): a sliding group's earlier
    /// entries are <see cref="SequenceBlocks.Released"/>, never read again.
    /// </summary>
    public int Reuse(ScheduledRequest r)
    {
        if (!enabled || r.BlockKeys.Count == 0)
            return 0;
        var layout = kv.Layout;
        var keys = r.BlockKeys;
        int n = Math.Min(keys.Count, (r.Length - 1) / kv.BlockSize);
        for (int g = 0; g < layout.GroupCount; g++)
            if (layout.Windows[g] is null)
                for (int b = 0; b < n; b++)
                    if (kv.Cached(keys[b], g) is null)
                    {
                        n = b;
                        break;
                    }

        // Each sliding group may shorten the hit, and a shorter hit reads other blocks: shorten until every group has its window.
        for (int before = -1; n > 0 && n != before;)
        {
            before = n;
            for (int g = 0; g < layout.GroupCount && n > 0; g++)
                if (layout.Windows[g] is not null)
                    n = LongestWindowHit(g, keys, n);
        }

        for (int g = 0; g < layout.GroupCount; g++)
        {
            int first = layout.FirstHeldBlock(g, n * kv.BlockSize);
            for (int b = 0; b < n; b++)
                if (b < first)
                    r.Blocks[g].Add(SequenceBlocks.Released);
                else
                    kv.Take(kv.Cached(keys[b], g)!.Value, r.Blocks[g]);
        }

        return n;
    }

    /// <summary>The largest m ≤ <paramref name="n"/> for which sliding group <paramref name="group"/> has cached every block position m·BlockSize's window reaches.</summary>
    private int LongestWindowHit(int group, IReadOnlyList<PrefixBlockKey> keys, int n)
    {
        // run[b]: cached blocks in a row ending at block b.
        var run = new int[n];
        for (int b = 0; b < n; b++)
            run[b] = kv.Cached(keys[b], group) is null ? 0 : (b == 0 ? 1 : run[b - 1] + 1);
        for (int m = n; m > 0; m--)
            if (run[m - 1] >= m - kv.Layout.FirstHeldBlock(group, m * kv.BlockSize))
                return m;
        return 0;
    }

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
            for (int g = 0; g < r.Blocks.GroupCount; g++)
                if (r.Blocks[g][r.RegisteredBlocks] is int block and not SequenceBlocks.Released)
                    kv.Register(block, r.BlockKeys[r.RegisteredBlocks], g);
    }
}
