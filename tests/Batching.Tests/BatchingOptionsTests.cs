namespace Serving.Batching.Tests;

public sealed class BatchingOptionsTests
{
    [Fact]
    public void ForBidirectionalAttention_Configured_WholePromptsNoPrefixCachingTheRestKept()
    {
        var configured = new BatchingOptions { MaxPrefillTokensPerStep = 64, PrefixCaching = true, KvBlockSize = 32, MaxQueuedRequests = 7 };

        var bidirectional = configured.ForBidirectionalAttention();

        Assert.Equal((0, false, 32, 7), (bidirectional.MaxPrefillTokensPerStep, bidirectional.PrefixCaching, bidirectional.KvBlockSize, bidirectional.MaxQueuedRequests));
        Assert.Equal((64, true), (configured.MaxPrefillTokensPerStep, configured.PrefixCaching));
    }
}
