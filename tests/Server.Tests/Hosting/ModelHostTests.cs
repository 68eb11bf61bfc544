using Serving.Authoring.Synthetic;
using Serving.Engine.Checkpoints;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Hosting;

public sealed class ModelHostTests
{
    [Fact]
    public async Task Start_WithModelFolder_ServesItUnderItsFolderName()
    {
        string dir = Path.Combine(TestDirectories.Path("qwen"), "my-qwen");
        SyntheticModelWriter.Write(dir, new SyntheticModelSpec { Architecture = "Qwen2ForCausalLM", Seed = 5 });
        await using var server = await ServerProcess.StartAsync("--model", dir, "--dtype", "float32");
        var (status, body) = await HttpJson.PostAsync(server.Http, "/v1/completions", new { model = "my-qwen", prompt = "hi", max_tokens = 3 });
        Assert.Equal(200, status);
        Assert.Equal(3, (int)body["usage"]!["completion_tokens"]!);
    }

    [Fact]
    public async Task Start_WithBrokenCheckpoint_FailsNamingFileAndTensor()
    {
        string dir = TestDirectories.Path("broken");
        SyntheticModelWriter.Write(dir, new SyntheticModelSpec { Seed = 5 });
        string weights = Path.Combine(dir, "model.safetensors");
        using (var f = new FileStream(weights, FileMode.Open))
            f.SetLength(f.Length / 2);
        var ex = await Assert.ThrowsAsync<ModelLoadException>(() => ServerProcess.StartAsync("--model", dir));
        Assert.Contains(weights, ex.Message);
        Assert.Contains("model.layers.", ex.Message);
    }

    [Fact]
    public async Task Start_WithInvalidOptions_FailsListingEachProblem()
    {
        var ex = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() =>
            ServerProcess.StartAsync("--dtype", "float8", "--max-sequences", "0", "--device", "tpu"));
        Assert.Contains("float8", ex.Message);
        Assert.Contains("MaxSequences", ex.Message);
        Assert.Contains("tpu", ex.Message);
    }

    [Fact]
    public async Task Start_WithInvalidStoreTimeouts_FailsNamingEachSetting()
    {
        var ex = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() =>
            ServerProcess.StartAsync("--Serving:Adapters:S3:ResponseTimeoutSeconds", "0", "--Serving:Adapters:S3:ReadIdleTimeoutSeconds", "NaN",
                "--Serving:Adapters:S3:BreakSeconds", "-1"));
        Assert.Contains("ResponseTimeoutSeconds", ex.Message);
        Assert.Contains("ReadIdleTimeoutSeconds", ex.Message);
        Assert.Contains("BreakSeconds", ex.Message);
    }
}
