using System.Diagnostics.Metrics;

namespace Serving.Runtime.Observability;

/// <summary>
/// The runtime's metrics as <see cref="System.Diagnostics.Metrics"/> instruments on one <see cref="Meter"/> per runtime
/// (created by the host's <see cref="IMeterFactory"/>, so runtimes in one process do not mix figures). Instrument names are
/// the Prometheus names the server exports them under, descriptions their help text, histogram bucket advice their
/// buckets; names with ':' are the <c>vllm:</c> ones a Kubernetes inference gateway reads for LoRA-affinity routing.
/// Event metrics are recorded where the events happen; state gauges (queue, batch, KV, adapters) are read from the values
/// their owners leave here in the callbacks run by <see cref="Refresh"/>, which an exporter calls before each collection.
/// </summary>
public sealed class ServingMetrics
{
    public const string MeterName = "Serving.Runtime";

    private static readonly double[] LatencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

    private readonly List<Action> _refresh = [];
    private readonly Lock _lock = new();

    /// <param name="meters">Creates this runtime's meter (and disposes it with the host).</param>
    /// <param name="time">The clock of <c>vllm:lora_requests_info</c>'s value.</param>
    public ServingMetrics(IMeterFactory meters, TimeProvider time)
    {
        Meter = meters.Create(MeterName);
        TimeToFirstToken = Histogram("serving_time_to_first_token_seconds", "From arrival to the first generated token.", LatencyBuckets);
        TimePerOutputToken = Histogram("serving_time_per_output_token_seconds", "Between consecutive generated tokens of one request.", LatencyBuckets);
        Meter.CreateObservableCounter("serving_generated_tokens_total", () => GeneratedTokensTotal, description: "Tokens generated.");
        // Per engine step, so a throughput gap can be split into slower steps vs smaller batches (vLLM's iteration_tokens).
        EngineStepSeconds = Histogram("serving_engine_step_seconds",
            "Duration of one engine step (one batched forward pass and sampling); phase: decode (every row one token) or prefill (some row feeds a prompt chunk).",
            LatencyBuckets);
        EngineStepPartSeconds = Histogram("serving_engine_step_part_seconds",
            "Parts of one batched engine step: forward (the model's forward call: all compute on CPU, launching the kernels on CUDA), "
            + "logits_to_host (waiting for the device and copying logits back; zero on CPU), sampling (tokens, detokenising, stop checks); "
            + "in steps with structured output whose token masks were not cached: mask_work (computing them, beside the forward pass) and "
            + "mask_wait (what of it the step waited for after the forward pass).", LatencyBuckets);
        EngineStepTokens = Histogram("serving_engine_step_tokens", "Tokens fed through one engine step (decode rows and prompt chunks).",
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]);
        EngineStepSequences = Histogram("serving_engine_step_sequences", "Sequences in one engine step.", [1, 2, 4, 8, 16, 32, 64, 128, 256]);
        const string cacheHelp = "Adapter tier lookups: tier (device, host) × result (hit, miss, eviction).";
        // Counts kept by the tiers themselves (host reads, device acquisitions and evictions), reported as totals.
        Meter.CreateObservableCounter("serving_adapter_cache_total", () => TierCounts, description: cacheHelp);
        AdapterLoadSeconds = Histogram("serving_adapter_load_seconds",
            "Adapter load latency into a tier: host (read, validate, parse from disk or source) and device (copy into a slot).", LatencyBuckets);
        RoutingDecisions = Meter.CreateCounter<long>("serving_routing_decisions_total",
            description: "Adapters chosen by model \"auto\" (one count per adapter in each chosen mix).");
        Meter.CreateObservableGauge("serving_adapter_source_breaker_state", () => BreakerStates,
            description: "Circuit breaker of a remote adapter source: 1 for its current state.");
        Meter.CreateObservableGauge("serving_requests_waiting", () => Waiting, description: "Requests queued for admission.");
        Meter.CreateObservableGauge("serving_requests_running", () => Running, description: "Sequences in the running batch.");
        Meter.CreateObservableGauge("serving_kv_cache_usage_ratio", () => KvUsage, description: "Fraction of KV cache blocks in use (0..1).");
        Meter.CreateObservableGauge("serving_kv_cache_bytes", () => (double)KvCacheBytes, description: "Memory of the paged KV cache (every block of every KV group's layers).");
        Meter.CreateObservableGauge("serving_preemptions", () => Preemptions, description: "Sequences preempted, for KV memory or (priority scheduling) a more urgent request, since start.");
        Meter.CreateObservableGauge("serving_native_tensors", () => (double)Engine.Runtime.NativeTensorCount.Live,
            description: "Live TorchSharp tensors (native handles not yet released).");
        // What survived the last GC outside generation 0 (gen1, gen2, large and pinned object heaps): retained memory,
        // without the saw-tooth of short-lived allocations between collections, and without the free space between
        // survivors (the large object heap is not compacted, so its holes come and go with the sizes asked for; counting
        // them made a soak's flat live data look 5-9 % larger at the end). The holes are their own gauge.
        Meter.CreateObservableGauge("serving_managed_heap_after_gc_bytes", () => ManagedHeapAfterGc().Live,
            description: "Live objects outside generation 0 (gen1, gen2, LOH, POH) as the last garbage collection left them, free space excluded.");
        Meter.CreateObservableGauge("serving_managed_heap_fragmentation_bytes", () => ManagedHeapAfterGc().Free,
            description: "Free space between the objects outside generation 0 as the last garbage collection left it.");
        // vLLM labels these with the served model's name, as its dashboards select them.
        Meter.CreateObservableGauge("vllm:num_requests_waiting", () => Labelled(Waiting), description: "Requests waiting to be processed.");
        Meter.CreateObservableGauge("vllm:num_requests_running", () => Labelled(Running), description: "Requests in the running batch.");
        Meter.CreateObservableGauge("vllm:kv_cache_usage_perc", () => Labelled(KvUsage), description: "KV cache usage: 1 means 100 percent.");
        Meter.CreateObservableGauge("vllm:gpu_cache_usage_perc", () => Labelled(KvUsage), description: "KV cache usage (the older name): 1 means 100 percent.");
        Meter.CreateObservableCounter("vllm:prefix_cache_queries", () => Labelled(PrefixCacheQueries),
            description: "Prefix cache queries, in terms of number of queried tokens.");
        Meter.CreateObservableCounter("vllm:prefix_cache_hits", () => Labelled(PrefixCacheHits),
            description: "Prefix cache hits, in terms of number of cached tokens.");
        Meter.CreateObservableGauge("serving_prefix_cache_blocks", () => PrefixCacheBlocks,
            description: "KV blocks held by the prefix cache (referenced or not; unreferenced ones count as free in the usage ratio).");
        Meter.CreateObservableGauge("vllm:cache_config_info", () => new Measurement<double>(1,
            new("block_size", CacheConfig.BlockSize.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            new("num_gpu_blocks", CacheConfig.Blocks.ToString(System.Globalization.CultureInfo.InvariantCulture)), new("cache_dtype", CacheDtype)),
            description: "Information of the KV cache configuration.");
        Meter.CreateObservableGauge("serving_model_config_info", () => new Measurement<double>(1,
                new("dtype", ModelConfig.Dtype), new("quantization", ModelConfig.Quantization)),
            description: "Information of the base model's weights: compute dtype and quantization (none or int8).");
        Meter.CreateObservableGauge("serving_model_weight_bytes", () => (double)ModelConfig.WeightBytes,
            description: "Bytes the base model's weights take as held (int8 projections count their scales).");
        Vllm = new VllmRequestMetrics(Meter, () => Preemptions);
        Meter.CreateObservableGauge("vllm:lora_requests_info", () => new Measurement<double>(time.GetUtcNow().ToUnixTimeMilliseconds() / 1000.0,
                new("running_lora_adapters", LoraInfo.Running), new("waiting_lora_adapters", LoraInfo.Waiting), new("max_lora", LoraInfo.MaxLora)),
            description: "Running stats on LoRA requests.");
    }

    public Meter Meter { get; }

    /// <summary>vLLM's request metrics, under its names.</summary>
    public VllmRequestMetrics Vllm { get; }

    public Histogram<double> TimeToFirstToken { get; }
    public Histogram<double> TimePerOutputToken { get; }
    private long _generatedTokens;

    /// <summary>Tokens generated since start (the console's tokens/s are differences of it).</summary>
    public long GeneratedTokensTotal => Interlocked.Read(ref _generatedTokens);

    public void AddGeneratedTokens(long count) => Interlocked.Add(ref _generatedTokens, count);

    /// <summary>Tagged <c>phase</c>: decode or prefill.</summary>
    public Histogram<double> EngineStepSeconds { get; }

    /// <summary>Tagged <c>part</c>: forward, logits_to_host, sampling; mask_work and mask_wait in steps that computed token masks.</summary>
    public Histogram<double> EngineStepPartSeconds { get; }

    public Histogram<double> EngineStepTokens { get; }
    public Histogram<double> EngineStepSequences { get; }

    /// <summary>Tagged <c>tier</c>: host or device.</summary>
    public Histogram<double> AdapterLoadSeconds { get; }

    /// <summary>Tagged <c>adapter</c>.</summary>
    public Counter<long> RoutingDecisions { get; }

    // State left by the refresh callbacks, read by the observable instruments.
    public double Waiting { get; set; }
    public double Running { get; set; }
    public double KvUsage { get; set; }
    public double Preemptions { get; set; }
    public long PrefixCacheQueries { get; set; }
    public long PrefixCacheHits { get; set; }
    public double PrefixCacheBlocks { get; set; }

    /// <summary>Totals kept by the tiers, tagged <c>tier</c>, <c>result</c>.</summary>
    public IReadOnlyList<Measurement<long>> TierCounts { get; set; } = [];

    /// <summary>Per remote source and breaker state: 1 for the current state, else 0; tagged <c>source</c>, <c>state</c>.</summary>
    public IReadOnlyList<Measurement<double>> BreakerStates { get; set; } = [];

    /// <summary>Running and waiting adapters (comma-separated ids) and the device slot count, for <c>vllm:lora_requests_info</c>.</summary>
    public (string Running, string Waiting, string MaxLora) LoraInfo { get; set; } = ("", "", "0");

    /// <summary>KV block size and block count, for <c>vllm:cache_config_info</c>.</summary>
    public (int BlockSize, int Blocks) CacheConfig { get; set; }

    public string CacheDtype { get; set; } = "";

    /// <summary>Bytes of the KV cache's storage, for <c>serving_kv_cache_bytes</c>; 0 before the engine loop made it.</summary>
    public long KvCacheBytes { get; set; }

    /// <summary>The base model's compute dtype, quantization and weight bytes, for <c>serving_model_config_info</c>.</summary>
    public (string Dtype, string Quantization, long WeightBytes) ModelConfig { get; set; } = ("", "none", 0);

    /// <summary>Runs <paramref name="refresh"/> on every <see cref="Refresh"/>.</summary>
    public void OnCollect(Action refresh)
    {
        lock (_lock)
            _refresh.Add(refresh);
    }

    /// <summary>Brings the state gauges up to date; an exporter calls it before it records the observable instruments.</summary>
    public void Refresh()
    {
        Action[] callbacks;
        lock (_lock)
            callbacks = [.. _refresh];
        foreach (var refresh in callbacks)
            refresh();
    }

    private Measurement<double> Labelled(double value) => new(value, new KeyValuePair<string, object?>("model_name", Vllm.ModelName));

    /// <summary>A tag for <see cref="Measurement{T}"/>s and <c>Record</c>/<c>Add</c> calls.</summary>
    public static KeyValuePair<string, object?> Tag(string name, string value) => new(name, value);

    /// <summary>
    /// One engine step: its time by phase (decode when every row fed one token of its sequence, drafts aside; else prefill),
    /// its parts when it ran as one batch, and its sequence tokens and rows.
    /// </summary>
    public void RecordEngineStep(int tokens, int rows, TimeSpan elapsed, Engine.Generation.StepTimings? parts)
    {
        EngineStepSeconds.Record(elapsed.TotalSeconds, Tag("phase", tokens == rows ? "decode" : "prefill"));
        if (parts is { } p)
        {
            EngineStepPartSeconds.Record(p.Forward.TotalSeconds, Tag("part", "forward"));
            EngineStepPartSeconds.Record(p.LogitsToHost.TotalSeconds, Tag("part", "logits_to_host"));
            EngineStepPartSeconds.Record(p.Sampling.TotalSeconds, Tag("part", "sampling"));
            if (p.MaskWork > TimeSpan.Zero)
            {
                EngineStepPartSeconds.Record(p.MaskWork.TotalSeconds, Tag("part", "mask_work"));
                EngineStepPartSeconds.Record(p.MaskWait.TotalSeconds, Tag("part", "mask_wait"));
            }
        }

        EngineStepTokens.Record(tokens);
        EngineStepSequences.Record(rows);
    }

    private Histogram<double> Histogram(string name, string help, double[] buckets) =>
        Meter.CreateHistogram(name, unit: null, description: help, tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = buckets });

    /// <summary>Bytes of live objects and of free space in generations 1 and up (gen2, LOH, POH) as the last GC left them.</summary>
    internal static (double Live, double Free) ManagedHeapAfterGc()
    {
        var generations = GC.GetGCMemoryInfo().GenerationInfo;
        long size = 0, free = 0;
        for (int g = 1; g < generations.Length; g++)
        {
            size += generations[g].SizeAfterBytes;
            free += generations[g].FragmentationAfterBytes;
        }

        return (size - free, free);
    }
}
