using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

public sealed class ChatCompletionsEndpointTests(DemoServerFixture fixture) : IClassFixture<DemoServerFixture>
{
    private const string Model = "serving-demo-tiny";

    [Fact]
    public async Task Chat_DemoModel_RendersChatMlAndAnswers()
    {
        var (status, body) = await HttpJson.PostAsync(fixture.Http, "/v1/chat/completions", new
        {
            model = Model,
            messages = new[] { new { role = "system", content = "Be brief." }, new { role = "user", content = "Hi" } },
            max_tokens = 5, temperature = 0, ignore_eos = true, return_token_ids = true,
        });
        Assert.Equal(200, status);
        Assert.Equal("chat.completion", (string?)body["object"]);
        Assert.Equal("assistant", (string?)body["choices"]![0]!["message"]!["role"]);
        var prompt = body["prompt_token_ids"]!.AsArray().Select(x => (int)x!).ToList();
        Assert.Equal(50257, prompt[0]);                         // <|im_start|>
        Assert.Equal(new[] { 50257, 562, 10167, 198 }, prompt.TakeLast(4));   // <|im_start|>assistant\n
        Assert.Equal(5, (int)body["usage"]!["completion_tokens"]!);
    }

    [Fact]
    public async Task Chat_Stream_RoleThenContentThenDone()
    {
        var events = await HttpJson.StreamAsync(fixture.Http, "/v1/chat/completions", new
        {
            model = Model, messages = new[] { new { role = "user", content = "Hi" } }, max_tokens = 4, temperature = 0, ignore_eos = true, stream = true,
        });
        Assert.Equal("[DONE]", events[^1]);
        var first = JsonNode.Parse(events[0])!;
        Assert.Equal("assistant", (string?)first["choices"]![0]!["delta"]!["role"]);
        Assert.Equal(6, events.Count);
    }

    [Theory]
    [InlineData("""{"model":"serving-demo-tiny","messages":[]}""")]
    [InlineData("""{"model":"serving-demo-tiny","messages":[{"role":"robot","content":"x"}]}""")]
    [InlineData("""{"model":"serving-demo-tiny","messages":"hello"}""")]
    public async Task Chat_BadMessages_400(string body)
    {
        var (status, error) = await HttpJson.PostRawAsync(fixture.Http, "/v1/chat/completions", body);
        Assert.Equal(400, status);
        Assert.Equal("messages", (string?)error["error"]!["param"]);
    }
}
