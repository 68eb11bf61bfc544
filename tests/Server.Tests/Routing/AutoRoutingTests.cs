using System.Text.Json.Nodes;
using Serving.Authoring.Demo;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Routing;

/// <summary><c>model: "auto"</c> through the real server: the response names the mix it ran, and that mix replayed gives the same tokens.</summary>
public sealed class AutoRoutingTests(DemoServerFixture fixture) : IClassFixture<DemoServerFixture>
{
    private static readonly string[] DemoAdapters = ["demo-all-r8", "demo-attn-r16", "demo-mlp-r4", "demo-clinical", "demo-toylang", "demo-digits"];

    private async Task<JsonNode> Complete(object body)
    {
        var (status, json) = await HttpJson.PostAsync(fixture.Http, "/v1/completions", body);
        Assert.True(status == 200, json.ToJsonString());
        return json;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task Auto_NamesItsMix_ReplayingThatMixGivesTheSameTokens(int topK)
    {
        var auto = await Complete(new { model = "auto", prompt = "Route this prompt", max_tokens = 6, temperature = 0, ignore_eos = true,
            return_token_ids = true, routing = new { top_k = topK } });
        var chosen = auto["choices"]![0]!["adapters"]!.AsArray();

        Assert.Equal(topK, chosen.Count);
        Assert.All(chosen, a => Assert.Contains((string)a!["id"]!, DemoAdapters));
        Assert.Equal(1.0, chosen.Sum(a => (double)a!["weight"]!), 5);
        var replay = await Complete(new { model = "serving-demo-tiny", prompt = "Route this prompt", max_tokens = 6, temperature = 0, ignore_eos = true,
            return_token_ids = true, adapters = chosen.Select(a => new { id = (string)a!["id"]!, weight = (double)a["weight"]! }).ToArray() });
        Assert.Equal(replay["choices"]![0]!["token_ids"]!.ToJsonString(), auto["choices"]![0]!["token_ids"]!.ToJsonString());
        var again = await Complete(new { model = "auto", prompt = "Route this prompt", max_tokens = 1, routing = new { top_k = topK } });
        var againChosen = again["choices"]![0]!["adapters"]!.AsArray();
        // The same mix again. Weights to 1e-6, not bit for bit: on libtorch's bf16 GEMMs (CPUs without AMX) the prompt's
        // hidden state can differ in its last bits with the batch it ran in (seen: 0.41539562 vs 0.41539565).
        Assert.Equal(chosen.Select(a => (string)a!["id"]!), againChosen.Select(a => (string)a!["id"]!));
        foreach (var (first, second) in chosen.Zip(againChosen))
            Assert.Equal((double)first!["weight"]!, (double)second!["weight"]!, tolerance: 1e-6);
    }

    [Fact]
    public async Task Auto_WithOneCandidate_ChoosesItAndCountsTheDecision()
    {
        var auto = await Complete(new { model = "auto", prompt = "only one", max_tokens = 2, routing = new { candidates = new[] { "demo-mlp-r4" } } });

        Assert.Equal("demo-mlp-r4", (string?)auto["choices"]![0]!["adapters"]![0]!["id"]);
        using var metrics = await fixture.Http.GetAsync("/metrics");
        Assert.Contains("serving_routing_decisions_total{adapter=\"demo-mlp-r4\"}", await metrics.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("patient reports fever for 3 days.", "demo-clinical")]
    [InlineData("translate zim blork:", "demo-toylang")]
    [InlineData("reverse 4821:", "demo-digits")]
    public async Task Auto_DemoDomainPrompts_RoutedToTheTrainedDemoAdapter(string prompt, string expected)
    {
        var candidates = new[] { "demo-clinical", "demo-toylang", "demo-digits" };
        foreach (string method in new[] { "arrow", "centroid" })
        {
            var auto = await Complete(new { model = "auto", prompt, max_tokens = 1, routing = new { candidates, method } });
            Assert.Equal(expected, (string?)auto["choices"]![0]!["adapters"]![0]!["id"]);
        }
    }

    [Fact]
    public async Task TrainedDemoAdapter_AnswersInItsDomainFormat_BaseDoesNot()
    {
        var adapted = await Complete(new { model = "demo-toylang", prompt = "translate zim blork:", max_tokens = 8, temperature = 0 });
        var base_ = await Complete(new { model = "serving-demo-tiny", prompt = "translate zim blork:", max_tokens = 8, temperature = 0 });

        Assert.Equal(" world hello", (string?)adapted["choices"]![0]!["text"]);
        Assert.NotEqual(" world hello", (string?)base_["choices"]![0]!["text"]);
    }

    [Fact]
    public async Task AutoChat_StreamNamesTheMixInItsFirstChunk()
    {
        var events = await HttpJson.StreamAsync(fixture.Http, "/v1/chat/completions",
            new { model = "auto", messages = new[] { new { role = "user", content = "hi" } }, max_tokens = 3, stream = true });

        var first = JsonNode.Parse(events[0])!;
        Assert.Single(first["adapters"]!.AsArray());
        Assert.Equal("[DONE]", events[^1]);
    }

    [Theory]
    [InlineData("{\"model\": \"auto\", \"prompt\": \"x\", \"routing\": {\"candidates\": [\"no-such\"]}}", 404, "no-such")]
    [InlineData("{\"model\": \"auto\", \"prompt\": \"x\", \"routing\": {\"top_k\": 0}}", 400, "top_k")]
    [InlineData("{\"model\": \"auto\", \"prompt\": \"x\", \"adapters\": [{\"id\": \"demo-all-r8\"}]}", 400, "adapters")]
    [InlineData("{\"model\": \"auto\", \"prompt\": \"x\", \"routing\": \"all\"}", 400, "routing")]
    [InlineData("{\"model\": \"auto\", \"prompt\": \"x\", \"routing\": {\"method\": \"centroid\", \"candidates\": [\"demo-all-r8\"]}}", 422, "routing_examples.jsonl")]
    [InlineData("{\"model\": \"auto\", \"prompt\": \"x\", \"routing\": {\"method\": \"magic\"}}", 400, "arrow")]
    [InlineData("{\"model\": \"serving-demo-tiny\", \"prompt\": \"x\", \"adapters\": [{\"id\": \"demo-all-r8\", \"weight\": -0.5}]}", 400, "positive")]
    [InlineData("{\"model\": \"serving-demo-tiny\", \"prompt\": \"x\", \"adapters\": [{\"id\": \"demo-all-r8\", \"weight\": 0}]}", 400, "positive")]
    public async Task Auto_BadRouting_ClearError(string body, int status, string expected)
    {
        var (actual, error) = await HttpJson.PostRawAsync(fixture.Http, "/v1/completions", body);

        Assert.Equal(status, actual);
        Assert.Contains(expected, error.ToJsonString());
    }

    [Fact]
    public async Task Auto_NoAdaptersAtAll_404Explaining()
    {
        string root = TestDirectories.Path("auto-none");
        try
        {
            string model = Path.Combine(root, "base");
            SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 4 });
            await using var server = await ServerProcess.StartAsync("--model", model, "--dtype", "float32", "--adapter-registry", Path.Combine(root, "registry.json"));
            var (status, error) = await HttpJson.PostAsync(server.Http, "/v1/completions", new { model = "auto", prompt = "x" });

            Assert.Equal(404, status);
            Assert.Contains("no adapters", (string?)error["error"]!["message"]);
        }
        finally
        {
            TestDirectories.Delete(root);
        }
    }
}
