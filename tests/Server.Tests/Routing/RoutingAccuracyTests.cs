using Serving.Authoring.Synthetic;
using Serving.Authoring.Training;
using Serving.Engine.Model;
using Serving.Engine.Sampling;
using Serving.Server.Tests.Support;
using static TorchSharp.torch;

namespace Serving.Server.Tests.Routing;

/// <summary>
/// <c>model: "auto"</c> on adapters trained for three synthetic domains (train-adapter's trainer), through the real
/// server: held-out prompts of each domain must be routed to that domain's adapter first in ≥ 90% of cases.
/// </summary>
public sealed class RoutingAccuracyTests : IAsyncLifetime
{
    private readonly string _root = TestDirectories.Path("routing-accuracy");
    private ServerProcess _server = null!;

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 11 });
        var random = new SeededRandom(5);
        foreach (string domain in SyntheticDomains.Names)
        {
            using var training = LoadedModel.Load(model, ScalarType.Float32, CPU, 512);
            string folder = Path.Combine(_root, "adapters", domain);
            SyntheticDomains.TrainAdapter(training, domain, random, 64,
                new LoraTrainingOptions { Rank = 8, Alpha = 16, Targets = SyntheticAdapterWriter.AllTargets, Steps = 40, LearningRate = 5e-3, Seed = 2 }, folder);
            File.WriteAllLines(Path.Combine(folder, "routing_examples.jsonl"), Enumerable.Range(0, 16)
                .Select(_ => System.Text.Json.JsonSerializer.Serialize(new { prompt = SyntheticDomains.Example(domain, random).Prompt })));
        }

        _server = await ServerProcess.StartAsync("--model", model, "--adapters", Path.Combine(_root, "adapters"), "--dtype", "float32",
            "--adapter-registry", Path.Combine(_root, "registry.json"));
    }

    [Theory]
    [InlineData("arrow")]
    [InlineData("centroid")]
    public async Task Auto_HeldOutPromptsOfEachDomain_RoutedToThatDomainsAdapter(string method)
    {
        var random = new SeededRandom(99);
        int correct = 0, total = 0;
        var confusion = new Dictionary<(string, string), int>();
        foreach (string domain in SyntheticDomains.Names)
            for (int i = 0; i < 10; i++)
            {
                var (status, body) = await HttpJson.PostAsync(_server.Http, "/v1/completions",
                    new { model = "auto", prompt = SyntheticDomains.Example(domain, random).Prompt, max_tokens = 1, routing = new { method } });
                Assert.Equal(200, status);
                string chosen = (string)body["choices"]![0]!["adapters"]![0]!["id"]!;
                confusion[(domain, chosen)] = confusion.GetValueOrDefault((domain, chosen)) + 1;
                correct += chosen == domain ? 1 : 0;
                total++;
            }

        Assert.True(correct >= 0.9 * total, $"{correct}/{total} routed to their domain: " + string.Join(", ", confusion.Select(c => $"{c.Key.Item1}→{c.Key.Item2}: {c.Value}")));
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }
}
