using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// vLLM's <c>add_special_tokens</c> through a real server whose tokenizer adds a BOS: completions add it unless asked not
/// to (gRPC alike), chat leaves it to the template unless asked.
/// </summary>
public sealed class AddSpecialTokensTests : IAsyncLifetime
{
    private const int Bos = 50256;
    private readonly string _root = TestDirectories.Path("add-special-tokens");
    private ServerProcess _server = null!;

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 43 });
        string configPath = Path.Combine(model, "tokenizer_config.json");
        var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        config["add_bos_token"] = true;
        File.WriteAllText(configPath, config.ToJsonString());
        _server = await ServerProcess.StartAsync("--model", model, "--dtype", "float32", "--cache-dir", Path.Combine(_root, "cache"));
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private async Task<int[]> PromptIds(string path, object extra)
    {
        var body = JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(extra))!.AsObject();
        body["model"] = (string)JsonNode.Parse(await _server.Http.GetStringAsync("/v1/models"))!["data"]![0]!["id"]!;
        body["max_tokens"] = 1;
        body["return_token_ids"] = true;
        if (path.Contains("chat", StringComparison.Ordinal))
            body["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hello there" });
        else
            body["prompt"] = "hello there";
        var (status, answer) = await HttpJson.PostRawAsync(_server.Http, path, body.ToJsonString());
        Assert.True(status == 200, answer.ToJsonString());
        return answer["prompt_token_ids"]!.AsArray().Select(t => (int)t!).ToArray();
    }

    [Fact]
    public async Task Completions_AddSpecialTokens_BosOnlyWhenAsked()
    {
        int[] plain = await PromptIds("/v1/completions", new { });
        Assert.Equal(Bos, plain[0]);
        int[] without = await PromptIds("/v1/completions", new { add_special_tokens = false });
        Assert.Equal(plain[1..], without);

        using var channel = global::Grpc.Net.Client.GrpcChannel.ForAddress(_server.Address);
        var client = new Serving.V1.Generation.GenerationClient(channel);
        var request = new Serving.V1.GenerateRequest { Prompt = "hello there", MaxTokens = 1 };
        request.Model = (string)JsonNode.Parse(await _server.Http.GetStringAsync("/v1/models"))!["data"]![0]!["id"]!;
        Assert.Equal(plain.Length, (await client.GenerateAsync(request)).Usage.PromptTokens);
        request.AddSpecialTokens = false;
        Assert.Equal(without.Length, (await client.GenerateAsync(request)).Usage.PromptTokens);
    }

    [Fact]
    public async Task ChatCompletions_AddSpecialTokens_BosOnlyWhenAsked()
    {
        int[] plain = await PromptIds("/v1/chat/completions", new { });
        Assert.NotEqual(Bos, plain[0]);                                              // the ChatML template writes no BOS
        int[] with = await PromptIds("/v1/chat/completions", new { add_special_tokens = true });
        Assert.Equal([Bos, .. plain], with);
    }
}
