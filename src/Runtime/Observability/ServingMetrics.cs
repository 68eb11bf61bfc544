using Prometheus;

namespace Serving.Runtime.Observability;

/// <summary>
/// Everything <c>GET /metrics</c> exposes, in one registry per server (so servers in one process do not mix figures).
/// Event metrics are recorded where the events happen; state gauges (queue, batch, KV, adapters) are refreshed from
/// their owners' snapshots just before each scrape (<see cref="OnCollect"/>). The <c>vllm:</c> names are the ones a
/// Kubernetes inference gateway reads for LoRA-affinity routing.
/// </summary>
internal sealed class ServingMetrics
{
    private static readonly double[] LatencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

    public ServingMetrics()
    {
        Registry = Metrics.NewCustomRegistry();
        var f = Metrics.WithCustomRegistry(Registry);
        Requests = f.CreateCounter("serving_requests_total", "Requests answered, by protocol, route, status (HTTP code or gRPC status name) and tenant.",
            new CounterConfiguration { LabelNames = ["protocol", "route", "status", "tenant"] });
        BreakerState = f.CreateGauge("serving_adapter_source_breaker_state", "Circuit breaker of a remote adapter source: 1 for its current state.",
            new GaugeConfiguration { LabelNames = ["source", "state"] });
        TimeToFirstToken = f.CreateHistogram("serving_time_to_first_token_seconds", "From arrival to the first generated token.",
            new HistogramConfiguration { Buckets = LatencyBuckets });
        TimePerOutputToken = f.CreateHistogram("serving_time_per_output_token_seconds", "Between consecutive generated tokens of one request.",
            new HistogramConfiguration { Buckets = LatencyBuckets });
        GeneratedTokens = f.CreateCounter("serving_generated_tokens_total", "Tokens generated.");
        // Per engine step, so a throughput gap can be split into slower steps vs smaller batches (vLLM's iteration_tokens).
        EngineStepSeconds = f.CreateHistogram("serving_engine_step_seconds",
            "Duration of one engine step (one batched forward pass and sampling); phase: decode (every row one token) or prefill (some row feeds a prompt chunk).",
            new HistogramConfiguration { LabelNames = ["phase"], Buckets = LatencyBuckets });
        EngineStepPartSeconds = f.CreateHistogram("serving_engine_step_part_seconds",
            "Parts of one batched engine step: forward (the model's forward call: all compute on CPU, launching the kernels on CUDA), "
            + "logits_to_host (waiting for the device and copying logits back; zero on CPU), sampling (tokens, detokenising, stop checks).",
            new HistogramConfiguration { LabelNames = ["part"], Buckets = LatencyBuckets });
        EngineStepTokens = f.CreateHistogram("serving_engine_step_tokens", "Tokens fed through one engine step (decode rows and prompt chunks).",
            new HistogramConfiguration { Buckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096] });
        EngineStepSequences = f.CreateHistogram("serving_engine_step_sequences", "Sequences in one engine step.",
            new HistogramConfiguration { Buckets = [1, 2, 4, 8, 16, 32, 64, 128, 256] });
        AdapterCache = f.CreateCounter("serving_adapter_cache_total", "Adapter tier lookups: tier (device, host) × result (hit, miss, eviction).",
            new CounterConfiguration { LabelNames = ["tier", "result"] });
        AdapterLoadSeconds = f.CreateHistogram("serving_adapter_load_seconds",
            "Adapter load latency into a tier: host (read, validate, parse from disk or source) and device (copy into a slot).",
            new HistogramConfiguration { LabelNames = ["tier"], Buckets = LatencyBuckets });
        Waiting = f.CreateGauge("serving_requests_waiting", "Requests queued for admission.");
        Running = f.CreateGauge("serving_requests_running", "Sequences in the running batch.");
        KvUsage = f.CreateGauge("serving_kv_cache_usage_ratio", "Fraction of KV cache blocks in use (0..1).");
        RoutingDecisions = f.CreateCounter("serving_routing_decisions_total", "Adapters chosen by model \"auto\" (one count per adapter in each chosen mix).",
            new CounterConfiguration { LabelNames = ["adapter"] });
        Preemptions = f.CreateGauge("serving_preemptions", "Sequences preempted for KV memory since start.");
        NativeTensors = f.CreateGauge("serving_native_tensors", "Live TorchSharp tensors (native handles not yet released).");
        // Process figures (process_working_set_bytes = RSS on Linux, dotnet_total_memory_bytes = managed heap, GC counts)
        // for soak checks and dashboards.
        DotNetStats.Register(Registry);
        // What survived the last GC outside generation 0 (gen1, gen2, large and pinned object heaps): retained memory,
        // without the saw-tooth of short-lived allocations between collections.
        ManagedHeapAfterGc = f.CreateGauge("serving_managed_heap_after_gc_bytes",
            "Managed heap outside generation 0 (gen1, gen2, LOH, POH) as the last garbage collection left it.");
        OnCollect(() =>
        {
            NativeTensors.Set(Engine.Runtime.NativeTensorCount.Live);
            var generations = GC.GetGCMemoryInfo().GenerationInfo;
            long retained = 0;
            for (int g = 1; g < generations.Length; g++)
                retained += generations[g].SizeAfterBytes;
            ManagedHeapAfterGc.Set(retained);
        });
    }

    public Gauge NativeTensors { get; }
    public Gauge ManagedHeapAfterGc { get; }

    public CollectorRegistry Registry { get; }
    public Counter Requests { get; }
    public Counter RoutingDecisions { get; }
    public Gauge BreakerState { get; }
    public Histogram TimeToFirstToken { get; }
    public Histogram TimePerOutputToken { get; }
    public Counter GeneratedTokens { get; }
    public Histogram EngineStepSeconds { get; }
    public Histogram EngineStepPartSeconds { get; }
    public Histogram EngineStepTokens { get; }
    public Histogram EngineStepSequences { get; }
    public Counter AdapterCache { get; }
    public Histogram AdapterLoadSeconds { get; }
    public Gauge Waiting { get; }
    public Gauge Running { get; }
    public Gauge KvUsage { get; }

    /// <summary>Running and waiting adapters (comma-separated ids) and the device slot count, for <c>vllm:lora_requests_info</c>.</summary>
    public (string Running, string Waiting, string MaxLora) LoraInfo { get; set; } = ("", "", "0");
    public Gauge Preemptions { get; }

    /// <summary>KV block size and block count, for <c>vllm:cache_config_info</c>.</summary>
    public (int BlockSize, int Blocks) CacheConfig { get; set; }

    public string CacheDtype { get; set; } = "";

    /// <summary>Runs <paramref name="refresh"/> before every scrape.</summary>
    public void OnCollect(Action refresh) => Registry.AddBeforeCollectCallback(refresh);

    /// <summary>
    /// Writes the Prometheus text exposition: every collector of <see cref="Registry"/>, then the vLLM-named gauges. Those
    /// names contain ':' (allowed by Prometheus, refused by prometheus-net's name check), so they are written here, from
    /// the values the last refresh left.
    /// </summary>
    public async Task WriteAsync(Stream output, DateTimeOffset now, CancellationToken ct)
    {
        await Registry.CollectAndExportAsTextAsync(output, ct);
        var (running, waiting, maxLora) = LoraInfo;
        var text = new System.Text.StringBuilder();
        Gauge(text, "vllm:num_requests_waiting", "Requests waiting to be processed.", Waiting.Value);
        Gauge(text, "vllm:num_requests_running", "Requests in the running batch.", Running.Value);
        Gauge(text, "vllm:kv_cache_usage_perc", "KV cache usage: 1 means 100 percent.", KvUsage.Value);
        Gauge(text, "vllm:gpu_cache_usage_perc", "KV cache usage (the older name): 1 means 100 percent.", KvUsage.Value);
        var (blockSize, blocks) = CacheConfig;
        Gauge(text, "vllm:cache_config_info", "Information of the KV cache configuration.", 1,
            $"block_size=\"{blockSize}\",num_gpu_blocks=\"{blocks}\",cache_dtype=\"{Escape(CacheDtype)}\"");
        Gauge(text, "vllm:lora_requests_info", "Running stats on LoRA requests.", now.ToUnixTimeMilliseconds() / 1000.0,
            $"running_lora_adapters=\"{Escape(running)}\",waiting_lora_adapters=\"{Escape(waiting)}\",max_lora=\"{Escape(maxLora)}\"");
        await output.WriteAsync(System.Text.Encoding.UTF8.GetBytes(text.ToString()), ct);
    }

    private static void Gauge(System.Text.StringBuilder text, string name, string help, double value, string? labels = null)
    {
        text.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
        text.Append("# TYPE ").Append(name).Append(" gauge\n");
        text.Append(name);
        if (labels is not null)
            text.Append('{').Append(labels).Append('}');
        text.Append(' ').Append(value.ToString("R", System.Globalization.CultureInfo.InvariantCulture)).Append('\n');
    }

    private static string Escape(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal);
}
