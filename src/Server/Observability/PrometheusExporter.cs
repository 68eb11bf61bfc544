using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Text;
using Prometheus;
using Serving.Runtime.Observability;

namespace Serving.Server.Observability;

/// <summary>
/// <c>GET /metrics</c>: the runtime's <see cref="ServingMetrics"/> instruments and the server's own request counter in
/// Prometheus text exposition, in one registry per server (so servers in one process do not mix figures). A
/// <see cref="MeterListener"/> on the runtime's meter feeds prometheus-net collectors named after the instruments (help =
/// description, buckets = the histogram's bucket advice, labels = the measurement's tags in order); observable instruments
/// are read at each scrape, after <see cref="ServingMetrics.Refresh"/>. Names with ':' (the <c>vllm:</c> gauges; allowed
/// by Prometheus, refused by prometheus-net's name check) are written here from the values read at that scrape.
/// </summary>
internal sealed class PrometheusExporter : IDisposable
{
    private readonly ServingMetrics _runtime;
    private readonly CollectorRegistry _registry = Metrics.NewCustomRegistry();
    private readonly MetricFactory _factory;
    private readonly MeterListener _listener;
    private readonly ConcurrentDictionary<string, Collector> _collectors = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Instrument, TextMetricFamily> _textFamilies = new();
    private readonly SemaphoreSlim _scrape = new(1, 1);

    public PrometheusExporter(ServingMetrics runtime)
    {
        _runtime = runtime;
        _factory = Metrics.WithCustomRegistry(_registry);
        Requests = _factory.CreateCounter("serving_requests_total", "Requests answered, by protocol, route, status (HTTP code or gRPC status name) and tenant.",
            new CounterConfiguration { LabelNames = ["protocol", "route", "status", "tenant"] });
        // Process figures (process_working_set_bytes = RSS on Linux, dotnet_total_memory_bytes = managed heap, GC counts)
        // for soak checks and dashboards.
        DotNetStats.Register(_registry);
        _listener = new MeterListener
        {
            InstrumentPublished = (instrument, listener) =>
            {
                if (!ReferenceEquals(instrument.Meter, runtime.Meter))
                    return;
                if (instrument.Name.Contains(':', StringComparison.Ordinal))
                    _textFamilies.TryAdd(instrument, new TextMetricFamily(instrument));
                listener.EnableMeasurementEvents(instrument);
            },
        };
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.Start();
    }

    /// <summary>The server's own counter of answered requests (<see cref="RequestCounting"/>).</summary>
    public Counter Requests { get; }

    /// <summary>Writes the exposition: every collector, then the <c>vllm:</c> families.</summary>
    public async Task WriteAsync(Stream output, CancellationToken ct)
    {
        var text = new StringBuilder();
        await _scrape.WaitAsync(ct);
        try
        {
            foreach (var family in _textFamilies.Values)
                family.BeginScrape();
            _runtime.Refresh();
            _listener.RecordObservableInstruments();
            await _registry.CollectAndExportAsTextAsync(output, ct);
            foreach (var family in _textFamilies.Values.OrderBy(f => f.Instrument.Name, StringComparer.Ordinal))
                family.Write(text);
        }
        finally
        {
            _scrape.Release();
        }

        await output.WriteAsync(Encoding.UTF8.GetBytes(text.ToString()), ct);
    }

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (_textFamilies.TryGetValue(instrument, out var family))
        {
            family.Record(value, TextLabels(tags));
            return;
        }

        var labels = new string[tags.Length];
        for (int i = 0; i < tags.Length; i++)
            labels[i] = tags[i].Value?.ToString() ?? "";
        if (!_collectors.TryGetValue(instrument.Name, out var collector))
            collector = _collectors.GetOrAdd(instrument.Name, Create(instrument, Names(tags)));
        switch (collector)
        {
            case Histogram histogram:
                histogram.WithLabels(labels).Observe(value);
                break;
            case Counter counter when instrument is ObservableCounter<long> or ObservableCounter<double>:
                counter.WithLabels(labels).IncTo(value);
                break;
            case Counter counter:
                counter.WithLabels(labels).Inc(value);
                break;
            case Gauge gauge:
                gauge.WithLabels(labels).Set(value);
                break;
        }
    }

    /// <summary>
    /// The collector for an instrument, named after it; instruments sharing a name (an event counter and a tier's totals)
    /// share it.
    /// </summary>
    private Collector Create(Instrument instrument, string[] labelNames)
    {
        string help = instrument.Description ?? "";
        return instrument switch
        {
            Histogram<double> h => _factory.CreateHistogram(instrument.Name, help, new HistogramConfiguration
            {
                LabelNames = labelNames,
                Buckets = h.Advice?.HistogramBucketBoundaries?.ToArray() ?? Prometheus.Histogram.ExponentialBuckets(0.001, 2, 16),
            }),
            Counter<long> or Counter<double> or ObservableCounter<long> or ObservableCounter<double> => _factory.CreateCounter(instrument.Name, help, labelNames),
            _ => _factory.CreateGauge(instrument.Name, help, labelNames),
        };
    }

    private static string[] Names(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var names = new string[tags.Length];
        for (int i = 0; i < tags.Length; i++)
            names[i] = tags[i].Key;
        return names;
    }

    private static string TextLabels(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var text = new StringBuilder();
        foreach (var (key, value) in tags)
        {
            if (text.Length > 0)
                text.Append(',');
            text.Append(key).Append("=\"").Append(Escape(value?.ToString() ?? "")).Append('"');
        }

        return text.ToString();
    }

    private static string Escape(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal);

    public void Dispose()
    {
        _listener.Dispose();
        _scrape.Dispose();
    }
}
