using Serving.Tools.Tests.Support;

namespace Serving.Tools.Tests.ModelGen;

/// <summary>ModelGen reads the model it is given and writes only into a new or empty output folder.</summary>
public sealed class ModelGenFolderTests(ReadOnlyModelFixture model) : IClassFixture<ReadOnlyModelFixture>
{
    [Fact]
    public void Adapter_FromReadOnlyModel_WritesTheAdapterAndLeavesTheModelUnchanged()
    {
        var before = model.Snapshot();
        string output = Path.Combine(model.Root, "adapter-out");

        var (code, text) = ToolProcess.Run(ToolProcess.ModelGen, model.CacheHome, "adapter", "--model", model.ModelDir, "--out", output, "--rank", "4");

        Assert.True(code == 0, text);
        Assert.True(File.Exists(Path.Combine(output, "adapter_model.safetensors")));
        Assert.Equal(before, model.Snapshot());
    }

    [Fact]
    public void TrainAdapter_FromReadOnlyModel_LeavesTheModelUnchanged()
    {
        var before = model.Snapshot();
        string data = Path.Combine(model.Root, "train.jsonl");
        File.WriteAllLines(data, ["{\"prompt\": \"ab\", \"completion\": \"ba\"}", "{\"prompt\": \"cd\", \"completion\": \"dc\"}"]);
        string output = Path.Combine(model.Root, "trained-out");

        var (code, text) = ToolProcess.Run(ToolProcess.ModelGen, model.CacheHome, "train-adapter", "--model", model.ModelDir, "--data", data, "--out", output,
            "--steps", "2", "--batch", "2", "--rank", "2");

        Assert.True(code == 0, text);
        Assert.True(File.Exists(Path.Combine(output, "adapter_config.json")));
        Assert.Equal(before, model.Snapshot());
    }

    [Theory]
    [InlineData("model", "--preset", "tiny")]
    [InlineData("adapter", "--model", null)]
    public void Generate_OutputIsAnExistingModel_RefusedAndUnchanged(string verb, string option, string? value)
    {
        var before = model.Snapshot();

        var (code, text) = ToolProcess.Run(ToolProcess.ModelGen, model.CacheHome, verb, option, value ?? model.ModelDir, "--out", model.ModelDir);

        Assert.Equal(1, code);
        Assert.Contains("exists and is not empty", text, StringComparison.Ordinal);
        Assert.Equal(before, model.Snapshot());
    }
}
