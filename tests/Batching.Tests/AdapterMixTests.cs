using Serving.Contracts;

namespace Serving.Batching.Tests;

public sealed class AdapterMixTests
{
    private static readonly AdapterId A = AdapterId.Parse("a"), B = AdapterId.Parse("b");

    [Fact]
    public void Create_WeightedPair_KeepsOrderAndWeights()
    {
        var mix = AdapterMix.Create([(A, 0.7f), (B, 0.3f)]);
        Assert.False(mix.IsBaseModel);
        Assert.Equal([(A, 0.7f), (B, 0.3f)], mix.Entries);
    }

    [Fact]
    public void Create_Empty_IsBaseModel() => Assert.Same(AdapterMix.None, AdapterMix.Create([]));

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(0f)]
    [InlineData(1000f)]
    [InlineData(-0.5f)]
    [InlineData(float.NegativeInfinity)]
    public void Create_BadWeight_Throws(float weight) => Assert.Throws<ArgumentException>(() => AdapterMix.Create([(A, weight)]));

    [Fact]
    public void Create_DuplicateOrTooMany_Throws()
    {
        Assert.Throws<ArgumentException>(() => AdapterMix.Create([(A, 1f), (A, 1f)]));
        Assert.Throws<ArgumentException>(() => AdapterMix.Create(Enumerable.Range(0, 9).Select(i => (AdapterId.Parse($"x{i}"), 1f)).ToList()));
    }
}
