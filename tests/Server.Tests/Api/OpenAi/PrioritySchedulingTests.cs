using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Grpc.Core;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// vLLM's priority scheduling through a real server with one row: an urgent request displaces a running less urgent one,
/// which resumes and ends exactly as it would have alone; API keys bound how urgent a tenant may ask to be.
/// </summary>
public sealed class PrioritySchedulingTests : IAsyncLifetime
{
    private const string Admin = "admin-key-priority-0123456789";
    private const string User = "user-key-priority-0123456789ab";
    private const string Trusted = "trusted-key-priority-0123456789";
    private readonly string _root = TestDirectories.Path("priority");
    private ServerProcess _server = null!;

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 41 });
        _server = await ServerProcess.StartAsync("--model", model, "--dtype", "float32", "--max-sequences", "1", "--max-context", "1024",
            "--scheduling-policy", "priority", "--cache-dir", Path.Combine(_root, "cache"),
            "--Serving:Auth:Keys:0:Key", User, "--Serving:Auth:Keys:0:Tenant", "tenant-a",
            "--Serving:Auth:Keys:1:Key", Trusted, "--Serving:Auth:Keys:1:Tenant", "tenant-b", "--Serving:Auth:Keys:1:MostUrgentPriority", "-5",
            "--Serving:Auth:Keys:2:Key", Admin, "--Serving:Auth:Keys:2:Role", "Admin");
    }

    [Fact]
    public async Task Completions_UrgentRequestWhileTheOnlyRowIsBusy_RunsFirstAndTheDisplacedOneEndsAsAlone()
    {
        var background = new { model = "base", prompt = "a long background job", max_tokens = 900, temperature = 0, ignore_eos = true, priority = 10, stream = true };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = JsonContent.Create(background) };
        request.Headers.Authorization = new("Bearer", Admin);
        using var response = await _server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(200, (int)response.StatusCode);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var text = new System.Text.StringBuilder();
        string? line;
        while ((line = await reader.ReadLineAsync()) is not null && text.Length == 0)
            if (line.StartsWith("data: {", StringComparison.Ordinal))
                text.Append((string?)JsonNode.Parse(line[6..])!["choices"]![0]!["text"]);

        var urgent = HttpJson.PostWithKeyAsync(_server.Http, Admin, "/v1/completions",
            new { model = "base", prompt = "urgent", max_tokens = 8, temperature = 0, ignore_eos = true, priority = -1 });
        var clock = Stopwatch.StartNew();
        var urgentDone = urgent.ContinueWith(_ => clock.Elapsed);
        while ((line = await reader.ReadLineAsync()) is not null)
            if (line.StartsWith("data: {", StringComparison.Ordinal))
                text.Append((string?)JsonNode.Parse(line[6..])!["choices"]![0]!["text"]);
        var backgroundDone = clock.Elapsed;

        var (status, body) = await urgent;
        Assert.True(status == 200, body);
        Assert.True(await urgentDone < backgroundDone, $"the urgent request ended at {await urgentDone}, after the background one ({backgroundDone})");
        var (aloneStatus, alone) = await HttpJson.PostWithKeyAsync(_server.Http, Admin, "/v1/completions", background with { stream = false });
        Assert.Equal(200, aloneStatus);
        Assert.Equal((string?)JsonNode.Parse(alone)!["choices"]![0]!["text"], text.ToString());
        using var scrape = new HttpRequestMessage(HttpMethod.Get, "/metrics");
        scrape.Headers.Authorization = new("Bearer", Admin);
        string metrics = await (await _server.Http.SendAsync(scrape)).Content.ReadAsStringAsync();
        Assert.Matches(@"(?m)^serving_preemptions(_total)?(\{[^}]*\})? [1-9]", metrics);
    }

    [Theory]
    [InlineData(User, 5, 200)]
    [InlineData(User, 0, 200)]
    [InlineData(User, -1, 403)]
    [InlineData(Trusted, -5, 200)]
    [InlineData(Trusted, -6, 403)]
    [InlineData(Admin, -1000, 200)]
    public async Task Completions_PriorityAgainstTheKeysBound_MoreUrgentThanAllowedIs403NamingIt(string key, int priority, int expected)
    {
        var (status, body) = await HttpJson.PostWithKeyAsync(_server.Http, key, "/v1/completions",
            new { model = "base", prompt = "who goes first", max_tokens = 2, priority });

        Assert.True(status == expected, body);
        if (expected == 403)
        {
            var error = JsonNode.Parse(body)!["error"]!;
            Assert.Equal("priority", (string?)error["param"]);
            Assert.Contains("more urgent than this API key may ask for", (string?)error["message"], StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Chat_PriorityNotAnInteger_400NamingIt()
    {
        var (status, body) = await HttpJson.PostWithKeyAsync(_server.Http, User, "/v1/chat/completions",
            new { model = "base", messages = new[] { new { role = "user", content = "hi" } }, max_tokens = 2, priority = 1.5 });

        Assert.True(status == 400, body);
        Assert.Equal("priority", (string?)JsonNode.Parse(body)!["error"]!["param"]);
    }

    [Fact]
    public async Task Generate_PriorityOverGrpc_CheckedAsOverRest()
    {
        using var channel = global::Grpc.Net.Client.GrpcChannel.ForAddress(_server.Address);
        var client = new V1.Generation.GenerationClient(channel);
        var request = new V1.GenerateRequest { Model = "base", Prompt = "who goes first", MaxTokens = 2, Priority = 3 };

        var served = await client.GenerateAsync(request, new Metadata { { "Authorization", "Bearer " + User } });
        var refused = await Assert.ThrowsAsync<RpcException>(async () =>
            await client.GenerateAsync(new V1.GenerateRequest(request) { Priority = -1 }, new Metadata { { "Authorization", "Bearer " + User } }));

        Assert.Equal(2, served.TokenIds.Count);
        Assert.Equal(StatusCode.PermissionDenied, refused.StatusCode);
        Assert.Contains("priority", refused.Status.Detail, StringComparison.Ordinal);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }
}
