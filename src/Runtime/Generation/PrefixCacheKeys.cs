using Serving.Batching.PrefixCaching;

namespace Serving.Runtime.Generation;

/// <summary>
/// The prefix-cache key chain of a request's prompt, computed on the caller's thread when it is queued: seeded with the
/// served model, the content versions and weights of the adapters it was pinned to (for <c>model: "auto"</c>, the mix it
/// was routed to), its tenant and its <c>cache_salt</c>, so a block is reused only by a request whose KV it would have
/// computed identically, for the same tenant and salt.
/// </summary>
internal static class PrefixCacheKeys
{
    public static (PrefixCacheSeed Seed, PrefixBlockKey[] Keys) For(GenerationCommand command, string modelId, int blockSize)
    {
        var adapters = command.Adapters.Mix.Entries.Select((e, i) => (command.Adapters.Records[i].Version, (double)e.Weight));
        var seed = PrefixCacheSeed.Create(modelId, adapters, command.Tenant, command.CacheSalt);
        return (seed, PrefixKeyChain.Compute(seed, command.PromptTokens, blockSize));
    }
}
