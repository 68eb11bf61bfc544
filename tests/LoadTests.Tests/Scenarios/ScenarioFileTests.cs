using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.Tests.Scenarios;

public sealed class ScenarioFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("serving-scenario-").FullName;

    private string Write(string json)
    {
        string path = Path.Combine(_dir, $"{Guid.NewGuid():N}.json");
        File.WriteAllText(path, json);
        return path;
    }

    [Fact]
    public void Read_FullScenario_BindsSnakeCaseKeys()
    {
        var scenario = ScenarioFile.Read(Write("""
            {
              "target": "http://127.0.0.1:9000", "protocol": "grpc",
              "adapters": { "count": 32, "popularity": "zipf", "zipf_s": 1.2 },
              "arrival": { "mode": "poisson", "rate": 7.5 },
              "prompt_tokens": { "distribution": "lognormal", "value": 200, "sigma": 0.7, "min": 8, "max": 1024 },
              "output_tokens": { "distribution": "fixed", "value": 32 },
              "auto_share": 0.1, "mixture_share": 0.2, "duration_seconds": 60, "seed": 9
            }
            """));
        Assert.Equal("grpc", scenario.Protocol);
        Assert.Equal(32, scenario.Adapters.Count);
        Assert.Equal(1.2, scenario.Adapters.ZipfS);
        Assert.Equal(7.5, scenario.Arrival.Rate);
        Assert.Equal("lognormal", scenario.PromptTokens.Distribution);
        Assert.Equal(60, scenario.DurationSeconds);
        Assert.Null(scenario.Requests);
    }

    [Theory]
    [InlineData("""{ "protocol": "rest" }""", "must be bounded")]
    [InlineData("""{ "requests": 10, "protocol": "http3" }""", "protocol: 'http3'")]
    [InlineData("""{ "requests": 10, "arrival": { "mode": "closed", "concurrency": 0 } }""", "arrival.concurrency")]
    [InlineData("""{ "requests": 10, "auto_share": 0.7, "mixture_share": 0.5 }""", "auto_share + mixture_share")]
    [InlineData("""{ "requests": 10, "adapters": { "count": 0 }, "auto_share": 0.5 }""", "need adapters")]
    [InlineData("""{ "requests": 10, "output_tokens": { "distribution": "uniform", "min": 50, "max": 10 } }""", "output_tokens: min 50 / max 10")]
    [InlineData("""{ "requests": 10, "concurency": 4 }""", "concurency")]
    [InlineData("""{ "requests": 10, "target": "ftp://x" }""", "target")]
    [InlineData("""{ "requests": 10, "arrival": { "mode": "poisson" }, "conversations": { "adapters_per_tenant": 0 } }""", "arrival.mode must be 'closed'")]
    [InlineData("""{ "requests": 10, "adapters": { "count": 8 }, "conversations": { "tenants": 8, "adapters_per_tenant": 4 } }""", "need 32 adapters in play")]
    [InlineData("""{ "requests": 10, "conversations": { "tenants": 2, "adapters_per_tenant": 0, "tenant_keys": ["k"] } }""", "conversations.tenant_keys: 1 keys for 2 tenants")]
    [InlineData("""{ "requests": 10, "conversations": { "adapters_per_tenant": 0, "turns": 0 } }""", "conversations.turns")]
    public void Read_InvalidScenario_ThrowsNamingTheKey(string json, string expected)
    {
        var ex = Assert.Throws<ScenarioException>(() => ScenarioFile.Read(Write(json)));
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_MissingFile_NamesThePath()
    {
        var ex = Assert.Throws<ScenarioException>(() => ScenarioFile.Read(Path.Combine(_dir, "nope.json")));
        Assert.Contains("nope.json", ex.Message, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
