using Serving.LoadTests.Planning;
using Serving.LoadTests.Running;
using Serving.LoadTests.Scenarios;
using Serving.LoadTests.Tests.Support;

namespace Serving.LoadTests.Tests.Running;

/// <summary>The load generator against the real server on loopback, over REST (SSE) and gRPC.</summary>
public sealed class LoadSessionTests(LoadTargetFixture server) : IClassFixture<LoadTargetFixture>
{
    private Scenario Scenario(string protocol, int requests) => new()
    {
        Target = server.Address.ToString().TrimEnd('/'),
        Protocol = protocol,
        Adapters = new AdapterSpec { Count = 6, Popularity = "zipf", ZipfS = 1.0 },
        Arrival = new ArrivalSpec { Mode = "closed", Concurrency = 4 },
        PromptTokens = new LengthSpec { Distribution = "uniform", Min = 4, Max = 24 },
        OutputTokens = new LengthSpec { Distribution = "uniform", Min = 2, Max = 8 },
        AutoShare = 0.2,
        MixtureShare = 0.2,
        Requests = requests,
        Seed = 7,
    };

    [Theory]
    [InlineData("rest")]
    [InlineData("grpc")]
    public async Task RunAsync_ClosedLoop_EveryRequestSucceedsWithItsPlannedTokens(string protocol)
    {
        var progress = new SilentProgressView();
        var (summary, run) = await LoadSession.RunAsync(protocol, Scenario(protocol, 30), progress, CancellationToken.None);

        Assert.Equal(30, summary.Requests);
        Assert.True(summary.Succeeded == 30, string.Join("\n", run.Outcomes.Where(o => !o.Succeeded).Select(o => $"{o.Status}: {o.Error}")));
        Assert.All(run.Outcomes, o => Assert.Equal(o.Request.MaxTokens, o.OutputTokens));
        Assert.All(run.Outcomes, o => Assert.InRange(o.TtftMs, 0, o.EndToEndMs));
        Assert.Contains(run.Outcomes, o => o.Request.Kind == RequestKind.Auto);
        Assert.Contains(run.Outcomes, o => o.Request.Kind == RequestKind.Mixture);
        Assert.Equal(run.Outcomes.Sum(o => o.OutputTokens) / run.WallSeconds, summary.TokensPerSecond, 6);
        Assert.True(summary.TtftMs.P50 <= summary.TtftMs.P99);
        Assert.Equal(30, progress.Last!.Completed);
        // Six adapters over four device slots: the run's own lookups were counted, and some missed.
        Assert.True(summary.AdapterCacheCounts.GetValueOrDefault("device.hit") + summary.AdapterCacheCounts.GetValueOrDefault("device.miss") > 0);
        Assert.InRange(summary.AdapterHitRates["device"], 0, 1);
    }

    [Theory]
    [InlineData("rest")]
    [InlineData("grpc")]
    public async Task RunAsync_Conversations_LaterTurnsCarryTheAnswersAndHitThePrefixCache(string protocol)
    {
        var scenario = Scenario(protocol, 18) with
        {
            AutoShare = 0,
            MixtureShare = 0,
            Arrival = new ArrivalSpec { Mode = "closed", Concurrency = 3 },
            Conversations = new ConversationSpec
            {
                Tenants = 3, AdaptersPerTenant = 2, SystemPromptTokens = 40, Turns = 3,
                UserTokens = new LengthSpec { Distribution = "uniform", Min = 4, Max = 8 },
            },
        };
        var (summary, run) = await LoadSession.RunAsync(protocol, scenario, new SilentProgressView(), CancellationToken.None);

        Assert.True(summary.Succeeded == 18, string.Join("\n", run.Outcomes.Where(o => !o.Succeeded).Select(o => $"{o.Status}: {o.Error}")));
        Assert.All(run.Outcomes, o => Assert.Equal(o.Request.MaxTokens, o.OutputTokenIds!.Count));
        // Every later turn is an earlier turn's prompt followed by the answer the server gave it.
        int continued = run.Outcomes.Count(o => run.Outcomes.Any(e => e.Request.Index < o.Request.Index
            && o.Request.PromptTokenIds.AsSpan().StartsWith([.. e.Request.PromptTokenIds, .. e.OutputTokenIds!])));
        Assert.True(continued >= 9, $"{continued} of 18 requests continue a conversation");
        // The tenants' 40-token system prompts and the histories are served from the cache.
        Assert.InRange(summary.PrefixCacheHitRate, 0.4, 1);
    }

    [Fact]
    public async Task RunAsync_OpenLoopForDuration_StopsAtTheBound()
    {
        var scenario = Scenario("rest", 0) with { Requests = null, DurationSeconds = 2, Arrival = new ArrivalSpec { Mode = "poisson", Rate = 5 } };
        var (summary, run) = await LoadSession.RunAsync("poisson", scenario, new SilentProgressView(), CancellationToken.None);

        Assert.InRange(summary.Requests, 2, 30);
        Assert.All(run.Outcomes, o => Assert.True(o.StartedAtSeconds < 2.5, $"request {o.Request.Index} started at {o.StartedAtSeconds:F2}s"));
        Assert.Equal(summary.Requests, summary.Succeeded);
    }

    [Fact]
    public async Task RunAsync_ServerRefuses_CountsErrorsByStatus()
    {
        // token ids beyond the vocabulary: the server answers 400 for every request; the run reports, never throws.
        var scenario = Scenario("rest", 6) with { TokenIdRange = [10_000_000, 10_000_001], AutoShare = 0, MixtureShare = 0 };
        var (summary, run) = await LoadSession.RunAsync("bad", scenario, new SilentProgressView(), CancellationToken.None);

        Assert.Equal(0, summary.Succeeded);
        Assert.Equal(6, summary.ErrorsByStatus["400"]);
        Assert.All(run.Outcomes, o => Assert.False(string.IsNullOrEmpty(o.Error)));
    }

    [Fact]
    public async Task RunAsync_UnknownAdapterIds_RefusedBeforeSending()
    {
        var scenario = Scenario("rest", 2) with { Adapters = new AdapterSpec { Ids = ["tenant-0", "no-such-adapter"] } };
        var ex = await Assert.ThrowsAsync<ScenarioException>(() => LoadSession.RunAsync("x", scenario, new SilentProgressView(), CancellationToken.None));
        Assert.Contains("no-such-adapter", ex.Message, StringComparison.Ordinal);
    }
}
