using Serving.AdapterStore.Registry;
using Serving.Contracts;
using Serving.Runtime.Generation;

namespace Serving.Runtime.Tests.Generation;

public sealed class PinnedAdaptersTests
{
    private static AdapterRecord Record(string id, string version) => new(AdapterId.Parse(id), $"/adapters/{id}", version, DateTimeOffset.UnixEpoch);

    [Fact]
    public void Constructor_RecordsInAnotherOrder_AlignedWithTheMixEntries()
    {
        var mix = AdapterMix.Create([(AdapterId.Parse("b"), 0.5f), (AdapterId.Parse("a"), 2f)]);

        var pinned = new PinnedAdapters(mix, [Record("a", "va"), Record("b", "vb")]);

        Assert.Equal(["b", "a"], pinned.Records.Select(r => r.Id.Value));
        Assert.Equal([new AdapterVersionKey(AdapterId.Parse("b"), "vb"), new AdapterVersionKey(AdapterId.Parse("a"), "va")], pinned.Versions);
    }

    [Fact]
    public void Constructor_EntryWithoutRecord_ThrowsNamingTheAdapter()
    {
        var mix = AdapterMix.Create([(AdapterId.Parse("a"), 1f), (AdapterId.Parse("c"), 1f)]);

        var ex = Assert.Throws<ArgumentException>(() => new PinnedAdapters(mix, [Record("a", "va")]));

        Assert.Contains("'c'", ex.Message);
    }

    [Fact]
    public void None_BaseModel_NoRecords()
    {
        Assert.True(PinnedAdapters.None.Mix.IsBaseModel);
        Assert.Empty(PinnedAdapters.None.Records);
    }
}
