using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>A full queue answers 429 at once instead of queueing without limit; everything admitted still finishes.</summary>
public sealed class BackpressureTests : IAsyncLifetime
{
    private readonly string _root = TestDirectories.Path("queue");
    private ServerProcess _server = null!;

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 30 });
        _server = await ServerProcess.StartAsync("--model", model, "--dtype", "float32", "--max-sequences", "1",
            "--Serving:Batching:MaxQueuedRequests", "2", "--cache-dir", Path.Combine(_root, "cache"));
    }

    [Fact]
    public async Task Completions_MoreThanQueueHolds_Some429AndTheRestComplete()
    {
        var results = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => HttpJson.PostAsync(_server.Http, "/v1/completions",
            new { model = "base", prompt = $"queue {i}", max_tokens = 120, temperature = 0, ignore_eos = true })));
        Assert.Contains(results, r => r.Status == 429);
        Assert.Contains(results, r => r.Status == 200);
        Assert.All(results, r => Assert.True(r.Status is 200 or 429, r.Body.ToJsonString()));
        Assert.All(results.Where(r => r.Status == 429), r => Assert.Equal("rate_limit_error", (string?)r.Body["error"]!["type"]));
        Assert.All(results.Where(r => r.Status == 200), r => Assert.Equal(120, (int)r.Body["usage"]!["completion_tokens"]!));
    }

    [Theory]
    [InlineData("/v1/completions")]
    [InlineData("/v1/chat/completions")]
    public async Task Streams_MoreThanQueueHolds_Rejected429BeforeAnyEvent(string path)
    {
        // A rejected stream must be an HTTP 429 (what clients retry on), not a 200 whose only event is an error.
        var statuses = await Task.WhenAll(Enumerable.Range(0, 16).Select(async i =>
        {
            object body = path.Contains("chat", StringComparison.Ordinal)
                ? new { model = "base", messages = new[] { new { role = "user", content = $"queue {i}" } }, max_tokens = 60, ignore_eos = true, stream = true }
                : new { model = "base", prompt = $"queue {i}", max_tokens = 60, ignore_eos = true, stream = true };
            using var response = await _server.Http.PostAsync(path, System.Net.Http.Json.JsonContent.Create(body));
            string text = await response.Content.ReadAsStringAsync();
            if ((int)response.StatusCode == 200)
                Assert.DoesNotContain("\"error\"", text, StringComparison.Ordinal);
            else
                Assert.Equal("application/json; charset=utf-8", response.Content.Headers.ContentType?.ToString());
            return (int)response.StatusCode;
        }));
        Assert.Contains(429, statuses);
        Assert.Contains(200, statuses);
        Assert.All(statuses, s => Assert.True(s is 200 or 429, $"{s}"));
    }

    [Fact]
    public async Task Grpc_MoreThanQueueHolds_SomeResourceExhaustedAndTheRestComplete()
    {
        using var channel = global::Grpc.Net.Client.GrpcChannel.ForAddress(_server.Address);
        var client = new V1.Generation.GenerationClient(channel);
        var outcomes = await Task.WhenAll(Enumerable.Range(0, 16).Select(async i =>
        {
            try
            {
                var r = await client.GenerateAsync(new V1.GenerateRequest { Model = "base", Prompt = $"queue {i}", MaxTokens = 120, Temperature = 0, IgnoreEos = true });
                return r.TokenIds.Count == 120 ? "ok" : "short";
            }
            catch (global::Grpc.Core.RpcException ex)
            {
                return ex.StatusCode.ToString();
            }
        }));

        Assert.Contains("ResourceExhausted", outcomes);
        Assert.Contains("ok", outcomes);
        Assert.All(outcomes, o => Assert.Contains(o, new[] { "ok", "ResourceExhausted" }));
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }
}
