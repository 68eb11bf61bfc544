using System.Globalization;
using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// A generative model served as a reranker from two tokens' logits (<c>--score-tokens no,yes</c>, as vLLM serves
/// Qwen3-Reranker): a pair's score is P(yes) among no and yes after the pair's prompt — checked against the same
/// probabilities read from the prompt logprobs of the pair followed by each token — and its hidden states stay in the
/// server (embeddings still need <c>--enable-embeddings</c>).
/// </summary>
public sealed class TokenClassifierScoringTests : IAsyncLifetime
{
    private const string Model = "reranker";
    private readonly string _root = TestDirectories.Path("token-classifier");
    private ServerProcess _server = null!;
    private string _model = null!;

    public async Task InitializeAsync()
    {
        _model = Path.Combine(_root, Model);
        SyntheticModelWriter.Write(_model, new SyntheticModelSpec { Architecture = "Qwen3ForCausalLM", HeadDim = 32, Seed = 137 });
        _server = await ServerProcess.StartAsync("--model", _model, "--dtype", "float32", "--max-context", "512", "--score-tokens", "no,yes");
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private async Task<int[]> TokenizeAsync(string text, bool specials)
    {
        var (status, answer) = await HttpJson.PostAsync(_server.Http, "/tokenize", new JsonObject { ["model"] = Model, ["prompt"] = text, ["add_special_tokens"] = specials });
        Assert.True(status == 200, answer.ToJsonString());
        return [.. answer["tokens"]!.AsArray().Select(t => (int)t!)];
    }

    /// <summary>The raw logprob of <paramref name="token"/> right after <paramref name="prompt"/>, as vLLM's prompt_logprobs reports it.</summary>
    private async Task<double> NextTokenLogprobAsync(int[] prompt, int token)
    {
        var (status, answer) = await HttpJson.PostAsync(_server.Http, "/v1/completions", new JsonObject
        {
            ["model"] = Model, ["prompt"] = new JsonArray([.. prompt.Append(token).Select(t => (JsonNode)t)]), ["max_tokens"] = 1, ["prompt_logprobs"] = 0,
        });
        Assert.True(status == 200, answer.ToJsonString());
        return (double)answer["choices"]![0]!["prompt_logprobs"]![prompt.Length]![token.ToString(CultureInfo.InvariantCulture)]!["logprob"]!;
    }

    private async Task<double> ExpectedScoreAsync(string first, string second)
    {
        int[] prompt = [.. await TokenizeAsync(first, true), .. await TokenizeAsync(second, false)];
        int no = (await TokenizeAsync("no", false)).Single(), yes = (await TokenizeAsync("yes", false)).Single();
        double lpYes = await NextTokenLogprobAsync(prompt, yes), lpNo = await NextTokenLogprobAsync(prompt, no);
        return 1 / (1 + Math.Exp(lpNo - lpYes));
    }

    [Fact]
    public async Task Score_PairsOfTexts_PYesAmongTheTwoTokensAfterEachPair()
    {
        const string query = "Query: do cats purr when content?\n";
        string[] documents = ["Document: cats purr when they are content.", "Document: the stock market fell sharply today."];

        var (status, answer) = await HttpJson.PostAsync(_server.Http, "/score", new JsonObject
        {
            ["model"] = Model, ["text_1"] = query, ["text_2"] = new JsonArray([.. documents.Select(d => (JsonNode)d)]),
        });

        Assert.True(status == 200, answer.ToJsonString());
        var data = answer["data"]!.AsArray();
        for (int i = 0; i < documents.Length; i++)
        {
            double score = (double)data[i]!["score"]!, expected = await ExpectedScoreAsync(query, documents[i]);
            Assert.InRange(score, 0, 1);
            Assert.True(Math.Abs(score - expected) < 1e-4, $"document {i}: score {score}, P(yes) from the logprobs {expected}");
        }
    }

    [Fact]
    public async Task Rerank_Documents_OrderedByTheirScores()
    {
        const string query = "Query: which animal purrs?\n";
        string[] documents = ["Document: a cat.", "Document: a dog.", "Document: a car.", "Document: a kitten."];

        var (status, answer) = await HttpJson.PostAsync(_server.Http, "/v1/rerank", new JsonObject
        {
            ["model"] = Model, ["query"] = query, ["documents"] = new JsonArray([.. documents.Select(d => (JsonNode)d)]), ["top_n"] = 3,
        });

        Assert.True(status == 200, answer.ToJsonString());
        var results = answer["results"]!.AsArray();
        Assert.Equal(3, results.Count);
        var expected = new List<(int Index, double Score)>();
        for (int i = 0; i < documents.Length; i++)
            expected.Add((i, await ExpectedScoreAsync(query, documents[i])));
        Assert.Equal(expected.OrderByDescending(e => e.Score).Take(3).Select(e => e.Index), results.Select(r => (int)r!["index"]!));
    }

    /// <summary>Scores from logits do not open the hidden states: embeddings of a generative model still need --enable-embeddings.</summary>
    [Fact]
    public async Task Embeddings_ScoringEnabled_StillRefusedWithoutEnableEmbeddings()
    {
        var (status, answer) = await HttpJson.PostAsync(_server.Http, "/v1/embeddings", new JsonObject { ["model"] = Model, ["input"] = "hi" });

        HttpJson.AssertBadRequest(status, answer, "model", "--enable-embeddings");
    }

    [Fact]
    public async Task Start_ScoreTokenNotInTheVocabulary_FailsNamingIt()
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => ServerProcess.StartAsync("--model", _model, "--dtype", "float32", "--score-tokens", "no,yesyesyes-not-a-token"));

        Assert.Contains("yesyesyes-not-a-token", error.ToString());
    }
}
