using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// Sliding layers' KV memory through real servers (vLLM's hybrid KV cache manager): a gpt-oss model (window 4 in every
/// second layer) served twice with the same KV memory (224 positions of every layer), once as it starts by default and once
/// with <c>--disable-hybrid-kv-cache-manager</c>. Four sequences of 80 positions fit together only when the sliding layers'
/// blocks behind the window go back to the pool; the tokens are the same either way.
/// </summary>
public sealed class SlidingWindowKvServingTests : IAsyncLifetime
{
    private const int Sequences = 4, PromptTokens = 20, NewTokens = 60;
    private readonly string _root = TestDirectories.Path("sliding-kv");
    private ServerProcess _hybrid = null!, _whole = null!;

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "gpt-oss");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Architecture = "GptOssForCausalLM", Seed = 151, ExpertIntermediate = 96 });
        string[] common = ["--model", model, "--dtype", "float32", "--max-sequences", "4", "--max-context", "128", "--kv-cache-tokens", "224"];
        _hybrid = await ServerProcess.StartAsync([.. common]);
        _whole = await ServerProcess.StartAsync([.. common, "--disable-hybrid-kv-cache-manager"]);
    }

    public async Task DisposeAsync()
    {
        await _hybrid.DisposeAsync();
        await _whole.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private static int[] Prompt(int i) => [.. Enumerable.Range(0, PromptTokens).Select(k => 3 + (i * 7919 + k * 131) % 240)];

    private static async Task<string> CompleteAsync(ServerProcess server, int i)
    {
        var (status, answer) = await HttpJson.PostAsync(server.Http, "/v1/completions", new JsonObject
        {
            ["model"] = "gpt-oss", ["prompt"] = new JsonArray([.. Prompt(i).Select(t => JsonValue.Create(t))]), ["max_tokens"] = NewTokens,
            ["temperature"] = 0, ["ignore_eos"] = true, ["return_token_ids"] = true,
        });
        Assert.True(status == 200, answer.ToJsonString());
        return answer["choices"]![0]!["token_ids"]!.ToJsonString();
    }

    [Fact]
    public async Task Completions_FourLongSequencesInTheSameMemory_RunTogetherOnlyWithSlidingGroupsAndGiveTheSameTokens()
    {
        // A block of the hybrid cache holds one of the two layers, so the same memory holds twice the blocks.
        Assert.Equal((28, 14), (await GpuBlocksAsync(_hybrid), await GpuBlocksAsync(_whole)));

        var alone = new List<string>();
        for (int i = 0; i < Sequences; i++)
            alone.Add(await CompleteAsync(_hybrid, i));
        for (int i = 0; i < Sequences; i++)
            Assert.Equal(alone[i], await CompleteAsync(_whole, i));

        var hybridTogether = await Task.WhenAll(Enumerable.Range(0, Sequences).Select(i => CompleteAsync(_hybrid, i)));
        var wholeTogether = await Task.WhenAll(Enumerable.Range(0, Sequences).Select(i => CompleteAsync(_whole, i)));

        Assert.Equal(alone, hybridTogether);
        Assert.Equal(0, (await MetricsAsync(_hybrid))["serving_preemptions"]);
        Assert.True((await MetricsAsync(_whole))["serving_preemptions"] > 0, "80 positions of four sequences fit 224 positions of every layer");
        Assert.Equal(Sequences, wholeTogether.Length);
        Assert.Equal(0, (await MetricsAsync(_hybrid))["vllm:kv_cache_usage_perc"]);
    }

    private static async Task<int> GpuBlocksAsync(ServerProcess server) =>
        int.Parse(Regex.Match(await server.Http.GetStringAsync("/metrics"), "num_gpu_blocks=\"([0-9]+)\"").Groups[1].Value, CultureInfo.InvariantCulture);

    private static Task<Dictionary<string, double>> MetricsAsync(ServerProcess server) => MetricSamples.ScrapeAsync(server.Http);
}
