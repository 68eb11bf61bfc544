using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Serving.Server.Api.OpenAi.Responses;

namespace Serving.Server.Tests.Api.OpenAi.Responses;

/// <summary>The stored responses' bounds and scoping, on fake time: per tenant, expiry, each tenant's bound, and the total's fairness.</summary>
public sealed class ResponseStoreTests
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-12-05T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

    private ResponseStore Store(long total = 10_000, long perTenant = 4_000, int minutes = 60) =>
        new(Options.Create(new ResponsesOptions { StoreBytes = total, StoreBytesPerTenant = perTenant, StoreMinutes = minutes }), _time);

    /// <summary>A response counting <paramref name="bytes"/> (even) bytes.</summary>
    private StoredResponse Response(string id, string tenant, int bytes) => new(id, tenant, _time.GetUtcNow(), new string('r', bytes / 2 - 2), ["i"], ["o"]);

    [Fact]
    public void Find_OtherTenantsId_NothingAndDeleteRefused()
    {
        var store = Store();
        Assert.True(store.Add(Response("resp_a", "a", 100)));

        Assert.Null(store.Find("b", "resp_a"));
        Assert.False(store.Delete("b", "resp_a"));
        Assert.NotNull(store.Find("a", "resp_a"));
        Assert.True(store.Delete("a", "resp_a"));
        Assert.Null(store.Find("a", "resp_a"));
        Assert.Equal(0, store.Bytes);
    }

    [Fact]
    public void Find_AfterStoreMinutes_Expired()
    {
        var store = Store(minutes: 5);
        store.Add(Response("old", "a", 100));
        _time.Advance(TimeSpan.FromMinutes(3));
        store.Add(Response("new", "a", 100));
        _time.Advance(TimeSpan.FromMinutes(2));

        Assert.Null(store.Find("a", "old"));
        Assert.NotNull(store.Find("a", "new"));
        Assert.Equal(100, store.Bytes);
    }

    [Fact]
    public void Add_PastTheTenantsBound_ItsOwnOldestGo()
    {
        var store = Store(perTenant: 1_000);
        store.Add(Response("b1", "b", 400));
        for (int i = 0; i < 5; i++)
            store.Add(Response($"a{i}", "a", 400));

        Assert.Equal(["a3", "a4"], Enumerable.Range(0, 5).Select(i => $"a{i}").Where(id => store.Find("a", id) is not null));
        Assert.NotNull(store.Find("b", "b1"));
        Assert.Equal(1_200, store.Bytes);
    }

    [Fact]
    public void Add_PastTheTotal_TheLargestTenantsOldestGoFirst()
    {
        var store = Store(total: 2_000, perTenant: 2_000);
        store.Add(Response("small", "b", 200));
        for (int i = 0; i < 4; i++)
            store.Add(Response($"a{i}", "a", 400));
        store.Add(Response("big", "c", 800));                 // 2,600 > 2,000: tenant a holds the most, its two oldest go

        Assert.NotNull(store.Find("b", "small"));
        Assert.NotNull(store.Find("c", "big"));
        Assert.Null(store.Find("a", "a0"));
        Assert.Null(store.Find("a", "a1"));
        Assert.NotNull(store.Find("a", "a2"));
        Assert.Equal(1_800, store.Bytes);
    }

    [Fact]
    public void Add_OneResponseMoreThanATenantMayHold_NotKeptAndOthersStay()
    {
        var store = Store(perTenant: 1_000);
        store.Add(Response("kept", "a", 400));

        Assert.False(store.Add(Response("huge", "b", 1_200)));
        Assert.Null(store.Find("b", "huge"));
        Assert.NotNull(store.Find("a", "kept"));
        Assert.Equal(1, store.Count);
    }

    [Theory]
    [InlineData(-1, 10, 5, "StoreBytes must be 0")]
    [InlineData(100, 200, 5, "StoreBytesPerTenant must be at least 1 and at most StoreBytes")]
    [InlineData(100, 0, 5, "StoreBytesPerTenant")]
    [InlineData(100, 10, 0, "StoreMinutes must be at least 1")]
    public void Validate_OutOfRange_NamesTheSetting(long total, long perTenant, int minutes, string problem)
    {
        var problems = new ResponsesOptions { StoreBytes = total, StoreBytesPerTenant = perTenant, StoreMinutes = minutes }.Validate().ToList();

        Assert.Contains(problems, p => p.Contains(problem, StringComparison.Ordinal) && p.StartsWith("Serving:Responses:", StringComparison.Ordinal));
    }
}
