using Serving.AdapterStore.Files;
using Serving.Authoring.Synthetic;
using Serving.Contracts;
using Serving.Runtime.Generation;
using Serving.Runtime.Hosting;
using Serving.Runtime.Tests.Support;
using Serving.Tests.Shared;
using Serving.Contracts.Generation;

namespace Serving.Runtime.Tests.Generation;

/// <summary>
/// A request runs on the adapter version its name resolved to when it arrived, even when the adapter is replaced while it
/// waits for a seat and it is admitted only afterwards: the engine loop never resolves a name again.
/// </summary>
public sealed class AdapterPinningTests : IAsyncLifetime
{
    private readonly string _root = TestDirectories.Create("adapter-pinning");
    private RuntimeHost _runtime = null!;
    private string _v1 = "", _v2 = "";

    public async Task InitializeAsync()
    {
        _runtime = await RuntimeHost.StartSyntheticAsync(_root, 43, null, ("Serving:Model:MaxSequences", "1"),
            ("Serving:Adapters:RegistryPath", Path.Combine(_root, "registry.json")));
        string model = Path.Combine(_root, "base");
        _v1 = Path.Combine(_root, "v1");
        _v2 = Path.Combine(_root, "v2");
        SyntheticAdapterWriter.Write(_v1, model, 8, 32, SyntheticAdapterWriter.AllTargets, 11);
        SyntheticAdapterWriter.Write(_v2, model, 8, 32, SyntheticAdapterWriter.AllTargets, 12);
    }

    public async Task DisposeAsync()
    {
        await _runtime.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private async Task<PinnedAdapters> Register(string path)
    {
        var lifecycle = _runtime.Get<ModelHost>().Lifecycle;
        var (record, _) = await lifecycle.RegisterAsync(lifecycle.ParseNewName("swapped"), path, AdapterReadPolicy.Trusted(1L << 30, TimeSpan.FromMinutes(1)), null,
            CancellationToken.None);
        return new PinnedAdapters(AdapterMix.Single(record.Id), [record]);
    }

    private static GenerationRequest Greedy(PinnedAdapters adapters, int tokens) =>
        new([7, 21, 3, 99, 14], new SamplingParams { Temperature = 0, MaxTokens = tokens, IgnoreEos = true }, adapters);

    private async Task<int[]> Run(GenerationRequest request, CancellationToken ct = default)
    {
        var tokens = new List<int>();
        await foreach (var e in _runtime.Get<GenerationClient>().SubmitAsync(request, ct))
            tokens.Add(e.Token.Id);
        return [.. tokens];
    }

    [Fact]
    public async Task SubmitAsync_AdapterReplacedWhileTheRequestWaits_RunsOnTheVersionItArrivedWith()
    {
        var v1 = await Register(_v1);
        var expectedV1 = await Run(Greedy(v1, 12));
        var worker = _runtime.Get<EngineWorker>();

        // The only seat is taken by a long base-model request (cancelled once the adapter is replaced); the adapter request
        // arrives (and is pinned to v1) behind it.
        using var stopBlocker = new CancellationTokenSource();
        var blocker = Run(Greedy(PinnedAdapters.None, 1000), stopBlocker.Token);
        Assert.True(SpinWait.SpinUntil(() => worker.Running == 1, TimeSpan.FromSeconds(30)));
        var waiting = Run(Greedy(v1, 12));
        Assert.True(SpinWait.SpinUntil(() => worker.Waiting == 1, TimeSpan.FromSeconds(30)));
        var v2 = await Register(_v2);
        Assert.Equal(1, worker.Waiting);                  // still not admitted: it starts after the replacement
        stopBlocker.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => blocker);
        var pinned = await waiting;
        var expectedV2 = await Run(Greedy(v2, 12));

        Assert.NotEqual(v1.Records[0].Version, v2.Records[0].Version);
        Assert.NotEqual(expectedV1, expectedV2);
        Assert.Equal(expectedV1, pinned);
    }
}
