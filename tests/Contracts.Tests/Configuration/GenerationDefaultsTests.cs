using Serving.Contracts.Configuration;

namespace Serving.Contracts.Tests.Configuration;

public sealed class GenerationDefaultsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("generation-defaults-").FullName;

    private GenerationDefaults Load(string json)
    {
        string path = Path.Combine(_dir, "generation_config.json");
        File.WriteAllText(path, json);
        return GenerationDefaults.Load(path);
    }

    [Fact]
    public void Load_SamplingFieldsAndMaxNewTokens_Read()
    {
        var d = Load("""{"eos_token_id": [1, 2], "temperature": 0.6, "top_p": 0.9, "top_k": 20, "repetition_penalty": 1.05, "min_p": 0.01, "max_new_tokens": 512}""");
        Assert.Equal((0.6, 0.9, 20, 1.05, 0.01, 512), (d.Temperature, d.TopP, d.TopK, d.RepetitionPenalty, d.MinP, d.MaxNewTokens));
        Assert.Equal([1, 2], d.EosTokenIds);
    }

    [Theory]
    [InlineData("""{"max_new_tokens": 0}""", "max_new_tokens must be at least 1")]
    [InlineData("""{"max_new_tokens": 2.5}""", "generation_config.json")]
    [InlineData("""[1]""", "expected a JSON object")]
    public void Load_Malformed_ErrorNamesTheFile(string json, string why)
    {
        var error = Assert.Throws<ModelConfigException>(() => Load(json));
        Assert.Contains(why, error.Message);
        Assert.Contains("generation_config.json", error.Message);
    }

    [Fact]
    public void Load_NoFile_NoDefaults() => Assert.Null(GenerationDefaults.Load(Path.Combine(_dir, "absent.json")).MaxNewTokens);

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
