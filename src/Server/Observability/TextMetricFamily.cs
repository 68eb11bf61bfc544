using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace Serving.Server.Observability;

/// <summary>
/// One metric family whose name Prometheus allows and prometheus-net refuses (vLLM's <c>vllm:</c> names, with ':'):
/// its samples per label set, kept here and written in the text exposition. Observable instruments are read afresh at
/// every scrape (<see cref="BeginScrape"/> forgets the last reading); counters add up; histograms keep cumulative
/// buckets (the instrument's bucket advice), a sum and a count, as a Prometheus client does.
/// </summary>
internal sealed class TextMetricFamily(Instrument instrument)
{
    private readonly Dictionary<string, double> _values = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (long[] Buckets, double Sum, long Count)> _histograms = new(StringComparer.Ordinal);
    private readonly double[] _bounds = instrument is Histogram<double> h ? h.Advice?.HistogramBucketBoundaries?.ToArray() ?? [] : [];
    private readonly Lock _lock = new();

    public Instrument Instrument => instrument;

    private bool Observable => instrument is ObservableCounter<long> or ObservableCounter<double> or ObservableGauge<long> or ObservableGauge<double>;

    private bool Counter => instrument is ObservableCounter<long> or ObservableCounter<double> or Counter<long> or Counter<double>;

    /// <summary>Forgets the observable instruments' last reading, before they are read again.</summary>
    public void BeginScrape()
    {
        if (!Observable)
            return;
        lock (_lock)
            _values.Clear();
    }

    public void Record(double value, string labels)
    {
        lock (_lock)
        {
            if (instrument is Histogram<double>)
            {
                var (buckets, sum, count) = _histograms.TryGetValue(labels, out var h) ? h : (new long[_bounds.Length], 0, 0);
                for (int i = 0; i < _bounds.Length; i++)
                    if (value <= _bounds[i])
                        buckets[i]++;
                _histograms[labels] = (buckets, sum + value, count + 1);
            }
            else if (Observable)
                _values[labels] = value;
            else
                _values[labels] = _values.GetValueOrDefault(labels) + value;
        }
    }

    public void Write(StringBuilder text)
    {
        string name = instrument.Name;
        string type = instrument is Histogram<double> ? "histogram" : Counter ? "counter" : "gauge";
        text.Append("# HELP ").Append(name).Append(' ').Append(instrument.Description).Append('\n');
        text.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
        lock (_lock)
        {
            foreach (var (labels, value) in _values)
                Sample(text, name + (Counter ? "_total" : ""), labels, null, value);
            foreach (var (labels, (buckets, sum, count)) in _histograms)
            {
                for (int i = 0; i < _bounds.Length; i++)
                    Sample(text, name + "_bucket", labels, _bounds[i].ToString("R", CultureInfo.InvariantCulture), buckets[i]);
                Sample(text, name + "_bucket", labels, "+Inf", count);
                Sample(text, name + "_sum", labels, null, sum);
                Sample(text, name + "_count", labels, null, count);
            }
        }
    }

    private static void Sample(StringBuilder text, string name, string labels, string? le, double value)
    {
        text.Append(name);
        if (labels.Length > 0 || le is not null)
        {
            text.Append('{').Append(labels);
            if (le is not null)
                text.Append(labels.Length > 0 ? "," : "").Append("le=\"").Append(le).Append('"');
            text.Append('}');
        }

        text.Append(' ').Append(value.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
    }
}
