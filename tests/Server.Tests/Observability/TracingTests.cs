using System.Collections.Concurrent;
using System.Diagnostics;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Observability;

/// <summary>A request's path as spans: generate → queue, prefill, decode, in order, with its tags.</summary>
public sealed class TracingTests(DemoServerFixture fixture) : IClassFixture<DemoServerFixture>
{
    [Fact]
    public async Task Completion_Traced_GenerateSpanWithQueuePrefillDecodeChildren()
    {
        var spans = new ConcurrentBag<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == "Serving",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Add,
        };
        ActivitySource.AddActivityListener(listener);

        // A mix no other test uses: the listener sees every server in the process, so the span is picked by its tag.
        var (status, _) = await HttpJson.PostAsync(fixture.Http, "/v1/completions",
            new { model = "serving-demo-tiny", adapters = new[] { new { id = "demo-attn-r16", weight = 0.37 } }, prompt = "trace me", max_tokens = 5, ignore_eos = true });
        Assert.Equal(200, status);

        Assert.True(SpinWait.SpinUntil(() => spans.Any(s => s.OperationName == "generate" && (string?)s.GetTagItem("serving.adapters") == "demo-attn-r16×0.37"), 5000));
        var generate = spans.Single(s => s.OperationName == "generate" && (string?)s.GetTagItem("serving.adapters") == "demo-attn-r16×0.37");
        Assert.Equal(5, generate.GetTagItem("serving.generated_tokens"));
        Assert.Equal("Length", generate.GetTagItem("serving.finish_reason"));
        var children = spans.Where(s => s.ParentSpanId == generate.SpanId).OrderBy(s => s.StartTimeUtc).ToList();
        Assert.Equal(["queue", "prefill", "decode"], children.Select(c => c.OperationName));
        for (int i = 1; i < children.Count; i++)
            Assert.True(children[i].StartTimeUtc >= children[i - 1].StartTimeUtc);
    }

    [Fact]
    public async Task OtlpExporterConfigured_NoCollectorListening_ServerStillServes()
    {
        string cache = TestDirectories.Path("otlp");
        try
        {
            await using var server = await ServerProcess.StartAsync("--cache-dir", cache, "--dtype", "float32", "--Serving:Tracing:OtlpEndpoint", "http://127.0.0.1:9");
            var (status, _) = await HttpJson.PostAsync(server.Http, "/v1/completions", new { model = "serving-demo-tiny", prompt = "otlp", max_tokens = 2 });
            Assert.Equal(200, status);
        }
        finally
        {
            TestDirectories.Delete(cache);
        }
    }
}
