using Microsoft.Extensions.Logging;
using Serving.Batching.Scheduling;
using Serving.Engine.Model;

namespace Serving.Runtime.Generation;

/// <summary>The start-up log lines on the KV cache: what it holds and, where sliding layers release their blocks, what that saves.</summary>
internal static class KvCacheReport
{
    public static void Log(ILogger logger, KvCache cache, StepScheduler scheduler, int layers)
    {
        double mib = cache.TotalBytes / 1048576.0;
        logger.LogInformation("KV cache: {Blocks} blocks of {BlockSize} tokens ({MiB:F0} MiB), up to {Sequences} sequences of {Context} tokens; {Groups}",
            cache.TotalBlocks, cache.BlockSize, mib, scheduler.MaxSequences, scheduler.MaxContext, cache.Groups);
        if (!cache.Groups.Slides)
            return;
        double layerBlockMiB = mib / cache.TotalBlocks / cache.Groups.LayersPerGroup;
        logger.LogInformation("Sliding layers' blocks behind their window go back to the pool: the KV cache takes {MiB:F0} MiB, where {Sequences} sequences of "
            + "{Context} tokens with every layer keeping every position would take {Whole:F0} MiB (--disable-hybrid-kv-cache-manager)",
            mib, scheduler.MaxSequences, scheduler.MaxContext, layerBlockMiB * layers * scheduler.MaxSequences * scheduler.Kv.BlocksFor(scheduler.MaxContext));
    }
}
