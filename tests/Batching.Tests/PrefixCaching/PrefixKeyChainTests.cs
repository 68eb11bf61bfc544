using Serving.Batching.PrefixCaching;

namespace Serving.Batching.Tests.PrefixCaching;

public sealed class PrefixKeyChainTests
{
    private static readonly PrefixCacheSeed Seed = PrefixCacheSeed.Create("model", [], "", null);

    [Fact]
    public void Compute_PartialLastBlock_GetsNoKey()
    {
        Assert.Equal(2, PrefixKeyChain.Compute(Seed, [.. Enumerable.Range(0, 47)], 16).Length);
        Assert.Empty(PrefixKeyChain.Compute(Seed, [.. Enumerable.Range(0, 15)], 16));
    }

    [Fact]
    public void Compute_SamePrefixDifferentTail_SameKeysUpToTheFirstDifferingBlock()
    {
        int[] a = [.. Enumerable.Range(0, 64)];
        int[] b = [.. Enumerable.Range(0, 40), 999, .. Enumerable.Range(41, 23)];

        var ka = PrefixKeyChain.Compute(Seed, a, 16);
        var kb = PrefixKeyChain.Compute(Seed, b, 16);

        Assert.Equal(ka.Take(2), kb.Take(2));
        Assert.NotEqual(ka[2], kb[2]);
        Assert.NotEqual(ka[3], kb[3]);                                     // a chain: a change taints every later block
    }

    [Fact]
    public void Compute_SameBlockAfterDifferentPrefixes_DifferentKeys()
    {
        int[] a = [.. Enumerable.Range(0, 16), .. Enumerable.Range(100, 16)];
        int[] b = [.. Enumerable.Range(1, 16), .. Enumerable.Range(100, 16)];

        Assert.NotEqual(PrefixKeyChain.Compute(Seed, a, 16)[1], PrefixKeyChain.Compute(Seed, b, 16)[1]);
    }

    [Fact]
    public void Create_EveryPartOfTheSeed_ChangesIt()
    {
        var seeds = new[]
        {
            Seed,
            PrefixCacheSeed.Create("other-model", [], "", null),
            PrefixCacheSeed.Create("model", [("v1", 1.0)], "", null),
            PrefixCacheSeed.Create("model", [("v2", 1.0)], "", null),
            PrefixCacheSeed.Create("model", [("v1", 0.5)], "", null),
            PrefixCacheSeed.Create("model", [("v1", 0.5), ("v2", 0.5)], "", null),
            PrefixCacheSeed.Create("model", [], "tenant", null),
            PrefixCacheSeed.Create("model", [], "", "salt"),
            PrefixCacheSeed.Create("model", [], "", ""),
            PrefixCacheSeed.Create("model", [], "salt", null),          // a tenant named like a salt is still a tenant
        };

        Assert.Equal(seeds.Length, seeds.Distinct().Count());
    }

    [Fact]
    public void Create_MixInAnyOrder_SameSeed()
    {
        Assert.Equal(PrefixCacheSeed.Create("m", [("a", 0.3), ("b", 0.7)], "t", null), PrefixCacheSeed.Create("m", [("b", 0.7), ("a", 0.3)], "t", null));
    }
}
