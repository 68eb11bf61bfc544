using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Serving.Runtime.Generation;
using Serving.Runtime.Observability;
using Serving.Runtime.Tests.Support;
using Serving.Tests.Shared;
using Serving.Contracts.Generation;

namespace Serving.Runtime.Tests.Observability;

/// <summary>The runtime's metrics are <see cref="System.Diagnostics.Metrics"/> instruments, recorded by the real engine loop.</summary>
public sealed class ServingMetricsTests : IAsyncLifetime
{
    private readonly string _root = TestDirectories.Create("runtime-metrics");
    private RuntimeHost _runtime = null!;

    public async Task InitializeAsync()
    {
        _runtime = await RuntimeHost.StartSyntheticAsync(_root, 31, null);
    }

    public async Task DisposeAsync()
    {
        await _runtime.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    [Fact]
    public async Task SubmitAsync_OneRequest_TokensLatenciesAndStepsRecordedOnTheRuntimesMeter()
    {
        var metrics = _runtime.Get<ServingMetrics>();
        var recorded = new ConcurrentQueue<(string Name, double Value, string Tags)>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (ReferenceEquals(instrument.Meter, metrics.Meter))
                    l.EnableMeasurementEvents(instrument);
            },
        };
        listener.SetMeasurementEventCallback<double>((i, v, tags, _) => recorded.Enqueue((i.Name, v, Describe(tags))));
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) => recorded.Enqueue((i.Name, v, Describe(tags))));
        listener.Start();

        int tokens = 0;
        await foreach (var _ in _runtime.Get<GenerationClient>().SubmitAsync(
                           new GenerationRequest([5, 9, 13, 2], new SamplingParams { Temperature = 0, MaxTokens = 3, IgnoreEos = true }, PinnedAdapters.None), CancellationToken.None))
            tokens++;
        metrics.Refresh();
        listener.RecordObservableInstruments();

        var all = recorded.ToList();
        Assert.Equal(3, tokens);
        Assert.Equal(3, all.Where(m => m.Name == "serving_generated_tokens_total").Sum(m => m.Value));
        Assert.Single(all, m => m.Name == "serving_time_to_first_token_seconds");
        Assert.Equal(2, all.Count(m => m.Name == "serving_time_per_output_token_seconds"));
        Assert.Contains(all, m => m.Name == "serving_engine_step_seconds" && m.Tags == "phase=prefill");
        Assert.Contains(all, m => m.Name == "serving_engine_step_seconds" && m.Tags == "phase=decode");
        Assert.Contains(all, m => m.Name == "vllm:cache_config_info" && m.Tags.StartsWith("block_size=16,num_gpu_blocks=", StringComparison.Ordinal));
        Assert.Contains(all, m => m.Name == "serving_requests_waiting" && m.Value == 0);
    }

    private static string Describe(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var parts = new List<string>();
        foreach (var (key, value) in tags)
            parts.Add($"{key}={value}");
        return string.Join(",", parts);
    }

    [Fact]
    public void ManagedHeapAfterGc_LargeObjectHeapWithHoles_HolesNotCountedAsLive()
    {
        // Every other 200 KB array survives: the uncompacted large object heap keeps the holes between them.
        var kept = new List<byte[]>();
        for (int i = 0; i < 64; i++)
        {
            var array = new byte[200_000];
            if (i % 2 == 0)
                kept.Add(array);
        }

        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: false);
        var (live, free) = ServingMetrics.ManagedHeapAfterGc();
        long size = GC.GetGCMemoryInfo().GenerationInfo.ToArray().Skip(1).Sum(g => g.SizeAfterBytes);

        Assert.True(free > 0, "the collection left no free space outside generation 0");
        Assert.Equal(size - free, live);
        Assert.True(live >= kept.Count * 200_000L, $"live {live} bytes is less than the {kept.Count} arrays still referenced");
        GC.KeepAlive(kept);
    }
}
