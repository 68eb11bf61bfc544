using Serving.Batching.PrefixCaching;
using Serving.Batching.Scheduling;
using Serving.Engine.Generation;

namespace Serving.Runtime.Generation;

/// <summary>
/// The engine-side half of a scheduled request: where its tokens go, its sequence (tokens, sampling, KV), the scheduler's
/// record of it, and the seed of its prefix-cache keys (null when prefix caching is off).
/// </summary>
internal sealed record ActiveRequest(GenerationCommand Command, SequenceState State, ScheduledRequest Scheduled, PrefixCacheSeed? Seed)
{
    /// <summary>Its speculative drafts between steps; null when it does not draft.</summary>
    public Speculation.SequenceDrafts? Drafts { get; init; }

    /// <summary>
    /// Appends the keys of the blocks the sequence's tokens now fill (after a step added a token), so that the scheduler
    /// caches them once their KV is written: generated blocks are reused like prompt blocks.
    /// </summary>
    public void ExtendBlockKeys(int blockSize)
    {
        if (Seed is not PrefixCacheSeed seed)
            return;
        var keys = Scheduled.BlockKeys;
        while ((keys.Count + 1) * blockSize <= State.TotalTokens)
            Scheduled.AppendBlockKey(PrefixKeyChain.Next(keys.Count == 0 ? seed.Value : keys[^1].Value, State.TokensFrom(keys.Count * blockSize, blockSize)));
    }
}
