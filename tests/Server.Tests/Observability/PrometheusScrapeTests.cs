using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Observability;

/// <summary>The exposition format proven by the real consumer: a Prometheus server scrapes /metrics and answers queries.</summary>
public sealed class PrometheusScrapeTests(DemoServerFixture fixture) : IClassFixture<DemoServerFixture>
{
    [Fact]
    public async Task Prometheus_ScrapesTheServer_RequestCounterAndLoraInfoQueryable()
    {
        Assert.Equal(200, (await HttpJson.PostAsync(fixture.Http, "/v1/completions", new { model = "demo-attn-r16", prompt = "scrape me", max_tokens = 2 })).Status);
        await using var prometheus = await PrometheusServer.StartAsync(fixture.Server.Address);

        var up = await prometheus.QueryAsync("up{job=\"serving\"} == 1", TimeSpan.FromSeconds(20));
        var requests = await prometheus.QueryAsync("serving_requests_total{protocol=\"http\",status=\"200\"}", TimeSpan.FromSeconds(10));
        var lora = await prometheus.QueryAsync("vllm:lora_requests_info", TimeSpan.FromSeconds(10));
        var ttft = await prometheus.QueryAsync("serving_time_to_first_token_seconds_count", TimeSpan.FromSeconds(10));

        Assert.Single(up);
        Assert.True(double.Parse((string)requests.Single()!["value"]![1]!, System.Globalization.CultureInfo.InvariantCulture) >= 1);
        Assert.Equal("8", (string?)lora.Single()!["metric"]!["max_lora"]);
        Assert.NotEmpty(ttft);
    }
}
