namespace Serving.LoadTests.Metrics;

/// <summary>One sample of the Prometheus text exposition format: metric name, labels, value.</summary>
internal sealed record PrometheusSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);
