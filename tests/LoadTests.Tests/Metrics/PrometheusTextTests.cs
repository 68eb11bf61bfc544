using Serving.LoadTests.Metrics;

namespace Serving.LoadTests.Tests.Metrics;

public sealed class PrometheusTextTests
{
    [Fact]
    public void Parse_LabelsAndEscapes_AreRead()
    {
        var samples = PrometheusText.Parse("""
            # HELP serving_adapter_cache_total Adapter tier lookups.
            # TYPE serving_adapter_cache_total counter
            serving_adapter_cache_total{tier="device",result="hit"} 41
            serving_adapter_cache_total{tier="device",result="miss"} 9
            vllm:lora_requests_info{running_lora_adapters="a,b",waiting_lora_adapters="say \"hi\"",max_lora="8"} 1.7e9
            up 1
            """);
        Assert.Equal(4, samples.Count);
        var info = samples.Single(s => s.Name == "vllm:lora_requests_info");
        Assert.Equal("a,b", info.Labels["running_lora_adapters"]);
        Assert.Equal("say \"hi\"", info.Labels["waiting_lora_adapters"]);
        Assert.Equal(1.7e9, info.Value);
        var cache = AdapterCacheCounters.From(samples);
        Assert.Equal(41 / 50.0, cache.HitRate("device"), 9);
        Assert.True(double.IsNaN(cache.HitRate("host")));
    }

    [Fact]
    public void Minus_TwoScrapes_GiveTheRunsCounts()
    {
        var before = AdapterCacheCounters.From(PrometheusText.Parse("serving_adapter_cache_total{tier=\"host\",result=\"hit\"} 10\nserving_adapter_cache_total{tier=\"host\",result=\"miss\"} 5"));
        var after = AdapterCacheCounters.From(PrometheusText.Parse("serving_adapter_cache_total{tier=\"host\",result=\"hit\"} 40\nserving_adapter_cache_total{tier=\"host\",result=\"miss\"} 15"));
        Assert.Equal(0.75, after.Minus(before).HitRate("host"), 9);
    }
}
