using System.Globalization;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Grpc.Net.Client;
using Serving.Server.Tests.Support;
using Serving.V1;

namespace Serving.Server.Tests.Observability;

/// <summary><c>GET /metrics</c> through the real server: request counts, latencies, queue/batch/KV gauges, adapter tiers, LoRA info.</summary>
public sealed partial class MetricsTests(DemoServerFixture fixture) : IClassFixture<DemoServerFixture>
{
    [Fact]
    public async Task Metrics_AfterTraffic_CountsRequestsLatenciesAndAdapterTiers()
    {
        for (int i = 0; i < 3; i++)
            Assert.Equal(200, (await HttpJson.PostAsync(fixture.Http, "/v1/completions", new { model = "demo-all-r8", prompt = $"metrics {i}", max_tokens = 3, ignore_eos = true })).Status);
        Assert.Equal(404, (await HttpJson.PostAsync(fixture.Http, "/v1/completions", new { model = "missing", prompt = "x" })).Status);
        using (var channel = GrpcChannel.ForAddress(fixture.Server.Address))
            await new V1.Generation.GenerationClient(channel).GenerateAsync(new GenerateRequest { Model = "serving-demo-tiny", Prompt = "grpc", MaxTokens = 2, IgnoreEos = true });

        var m = await ScrapeAsync();

        Assert.True(Value(m, "serving_requests_total", "protocol=\"http\",status=\"200\",route=\"/v1/completions\"") >= 3);
        Assert.True(Value(m, "serving_requests_total", "protocol=\"http\",status=\"404\"") >= 1);
        Assert.True(Value(m, "serving_requests_total", "protocol=\"grpc\",status=\"OK\"") >= 1);
        Assert.True(Value(m, "serving_time_to_first_token_seconds_count") >= 4);
        Assert.True(Value(m, "serving_time_per_output_token_seconds_count") >= 6);
        Assert.True(Value(m, "serving_generated_tokens_total") >= 11);
        Assert.True(Value(m, "serving_engine_step_seconds_count", "phase=\"prefill\"") >= 4);
        Assert.True(Value(m, "serving_engine_step_seconds_count", "phase=\"decode\"") >= 1);
        Assert.True(Value(m, "serving_engine_step_seconds_sum") > 0);
        double steps = Value(m, "serving_engine_step_seconds_count");
        foreach (string part in new[] { "forward", "logits_to_host", "sampling" })
            Assert.Equal(steps, Value(m, "serving_engine_step_part_seconds_count", $"part=\"{part}\""));
        Assert.True(Value(m, "serving_engine_step_part_seconds_sum", "part=\"forward\"") > 0);
        Assert.True(Value(m, "serving_engine_step_part_seconds_sum") <= Value(m, "serving_engine_step_seconds_sum"), "the parts lie within their steps");
        Assert.True(Value(m, "serving_engine_step_tokens_sum") >= 11 + 4, "every generated token but the last is fed back, plus the prompts");
        Assert.True(Value(m, "serving_engine_step_sequences_sum") >= 11);
        Assert.True(Value(m, "serving_adapter_cache_total", "tier=\"device\",result=\"miss\"") + Value(m, "serving_adapter_cache_total", "tier=\"device\",result=\"hit\"") >= 3);
        Assert.True(Value(m, "serving_adapter_load_seconds_count", "tier=\"device\"") >= 1);
        Assert.Equal(0, Value(m, "vllm:num_requests_waiting"));
        Assert.InRange(Value(m, "vllm:kv_cache_usage_perc"), 0, 1);
        Assert.Contains("max_lora=\"8\"", m);
        Assert.Equal(Value(m, "vllm:kv_cache_usage_perc"), Value(m, "vllm:gpu_cache_usage_perc"));
        Assert.Matches("vllm:cache_config_info\\{block_size=\"16\",num_gpu_blocks=\"\\d+\",cache_dtype=\"float32\"\\} 1", m);
    }

    [Fact]
    public async Task Metrics_VllmRequestMetrics_UnderVllmsNamesLabelledWithTheModel()
    {
        var before = await ScrapeAsync();
        for (int i = 0; i < 2; i++)
            Assert.Equal(200, (await HttpJson.PostAsync(fixture.Http, "/v1/completions", new { model = "serving-demo-tiny", prompt = $"vllm names {i}", max_tokens = 4, ignore_eos = true })).Status);

        var m = await ScrapeAsync();

        const string model = "model_name=\"serving-demo-tiny\"";
        double Delta(string name, string labels = "") => Value(m, name, labels) - Value(before, name, labels);
        Assert.Equal(2, Delta("vllm:request_success_total", model + ",finished_reason=\"length\""));
        Assert.Equal(8, Delta("vllm:generation_tokens_total", model));
        Assert.True(Delta("vllm:prompt_tokens_total", model) >= 6);
        foreach (string histogram in new[] { "vllm:e2e_request_latency_seconds", "vllm:request_queue_time_seconds", "vllm:request_prefill_time_seconds",
                     "vllm:request_decode_time_seconds", "vllm:request_inference_time_seconds", "vllm:time_to_first_token_seconds",
                     "vllm:request_prompt_tokens", "vllm:request_generation_tokens", "vllm:request_time_per_output_token_seconds" })
        {
            Assert.Contains($"# TYPE {histogram} histogram", m, StringComparison.Ordinal);
            Assert.Equal(2, Delta(histogram + "_count", model));
            Assert.Equal(2, Delta(histogram + "_bucket", model + ",le=\"+Inf\""));
        }

        Assert.Equal(6, Delta("vllm:inter_token_latency_seconds_count", model));
        Assert.Equal(6, Delta("vllm:time_per_output_token_seconds_count", model));
        Assert.Equal(8, Delta("vllm:request_generation_tokens_sum", model));
        Assert.Equal(2, Delta("vllm:request_generation_tokens_bucket", model + ",le=\"5\""));
        Assert.Equal(0, Delta("vllm:request_generation_tokens_bucket", model + ",le=\"2\""));
        Assert.True(Value(m, "vllm:e2e_request_latency_seconds_sum", model) >= Value(m, "vllm:request_inference_time_seconds_sum", model));
        Assert.Matches("(?m)^vllm:num_preemptions_total\\{model_name=\"serving-demo-tiny\"\\} 0$", m);
        Assert.Matches("(?m)^vllm:num_requests_running\\{model_name=\"serving-demo-tiny\"\\} ", m);
        Assert.Contains("# TYPE vllm:request_success counter", m, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_WhileAStreamRuns_ShowsItRunningWithItsAdapter()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = JsonContent.Create(new { model = "demo-mlp-r4", prompt = "keep going", max_tokens = 200, ignore_eos = true, stream = true }),
        };
        using var response = await fixture.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        await reader.ReadLineAsync();                                   // first token: it is running now

        var m = await ScrapeAsync();

        Assert.True(Value(m, "vllm:num_requests_running") >= 1);
        Assert.Matches("vllm:lora_requests_info\\{[^}]*running_lora_adapters=\"[^\"]*demo-mlp-r4", m);
        Assert.True(Value(m, "vllm:kv_cache_usage_perc") > 0);
    }

    private async Task<string> ScrapeAsync()
    {
        using var response = await fixture.Http.GetAsync("/metrics");
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        return await response.Content.ReadAsStringAsync();
    }

    /// <summary>Sum of the samples of <paramref name="name"/> whose labels contain every comma-separated fragment of <paramref name="labels"/>.</summary>
    private static double Value(string text, string name, string labels = "")
    {
        double total = 0;
        foreach (Match match in Sample().Matches(text))
            if (match.Groups["name"].Value == name && labels.Split(',', StringSplitOptions.RemoveEmptyEntries).All(l => match.Groups["labels"].Value.Contains(l, StringComparison.Ordinal)))
                total += double.Parse(match.Groups["value"].Value, CultureInfo.InvariantCulture);
        return total;
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[^}]*)\})? (?<value>\S+)$", RegexOptions.Multiline)]
    private static partial Regex Sample();
}
