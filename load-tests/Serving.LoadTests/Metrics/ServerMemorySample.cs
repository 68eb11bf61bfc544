namespace Serving.LoadTests.Metrics;

/// <summary>
/// The server's memory at one moment, from <c>/metrics</c>: resident set (<c>process_working_set_bytes</c>), managed heap
/// as the last GC left it (<c>serving_managed_heap_after_gc_bytes</c>; else <c>dotnet_total_memory_bytes</c>, which
/// includes garbage not yet collected) and live native tensors (<c>serving_native_tensors</c>). NaN where not exported.
/// </summary>
internal sealed record ServerMemorySample(double AtSeconds, double ResidentBytes, double ManagedBytes, double NativeTensors, double Waiting, double Running)
{
    public static ServerMemorySample From(double atSeconds, IReadOnlyList<PrometheusSample> samples)
    {
        double Value(string name) => samples.FirstOrDefault(s => s.Name == name)?.Value ?? double.NaN;
        double heap = Value("serving_managed_heap_after_gc_bytes");
        return new ServerMemorySample(atSeconds, Value("process_working_set_bytes"), double.IsNaN(heap) ? Value("dotnet_total_memory_bytes") : heap,
            Value("serving_native_tensors"),
            Value("serving_requests_waiting"), Value("serving_requests_running"));
    }
}
