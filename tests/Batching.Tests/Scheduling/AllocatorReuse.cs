using Serving.Batching.PrefixCaching;
using Serving.Batching.Scheduling;

namespace Serving.Batching.Tests.Scheduling;

/// <summary>The allocator's cached blocks taken as a one-group prefix hit, for tests of the allocator alone.</summary>
internal static class AllocatorReuse
{
    /// <summary>
    /// Appends to <paramref name="table"/> (one reference each) the cached blocks of the longest run of
    /// <paramref name="keys"/>, from the first, that are all cached, up to <paramref name="maxBlocks"/>; returns how many.
    /// </summary>
    public static int Reuse(this KvBlockAllocator kv, IReadOnlyList<PrefixBlockKey> keys, int maxBlocks, List<int> table)
    {
        int reused = 0;
        for (; reused < Math.Min(keys.Count, maxBlocks) && kv.Cached(keys[reused], 0) is int block; reused++)
            kv.Take(block, table);
        return reused;
    }
}
