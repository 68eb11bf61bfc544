using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Contracts.Generation;
using Serving.Engine.Checkpoints;

namespace Serving.Engine.Tests.Checkpoints;

/// <summary>A folder's sentence-transformers modules: the pooling mode and Dense chain read, and each malformed Dense module named.</summary>
public sealed class SentenceTransformersModulesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("st-modules-").FullName;

    [Fact]
    public void Read_MeanAndTwoDense_ChainApplied()
    {
        SentenceTransformersWriter.Write(_dir, 8, "mean_tokens", [new(12, Bias: true, Tanh: true), new(4)]);
        var modules = SentenceTransformersModules.Read(_dir, 8);
        Assert.Equal((PromptPooling?)PromptPooling.Mean, modules.Pooling);
        Assert.Equal([12, 4], modules.Dense.Select(d => d.OutFeatures));
        var y = modules.Apply([1, 0, 0, 0, 0, 0, 0, 0]);
        Assert.Equal(4, y.Length);
        Assert.All(y, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void Read_NoModulesFile_None() => Assert.Same(SentenceTransformersModules.None, SentenceTransformersModules.Read(_dir, 8));

    [Theory]
    [InlineData("in_features", "takes 8 inputs, but what reaches it has 7")]
    [InlineData("activation_function", "activation_function 'torch.nn.modules.activation.GELU' is not served")]
    [InlineData("weights", "pytorch_model.bin is never read")]
    [InlineData("shape", "tensor linear.weight has shape [6, 8], expected [6, 9]")]
    [InlineData("path", "module's path leaves the model folder")]
    public void Read_DenseModuleMalformed_NamedWithWhy(string broken, string why)
    {
        SentenceTransformersWriter.Write(_dir, 8, "mean_tokens", [new(6)]);
        string folder = Path.Combine(_dir, "2_Dense"), config = Path.Combine(folder, "config.json");
        var settings = JsonNode.Parse(File.ReadAllText(config))!;
        switch (broken)
        {
            case "shape":
                settings["in_features"] = 9;
                break;
            case "activation_function":
                settings["activation_function"] = "torch.nn.modules.activation.GELU";
                break;
            case "weights":
                File.Delete(Path.Combine(folder, "model.safetensors"));
                break;
            case "path":
                var modules = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "modules.json")))!;
                modules[2]!["path"] = "../elsewhere";
                File.WriteAllText(Path.Combine(_dir, "modules.json"), modules.ToJsonString());
                break;
        }

        File.WriteAllText(config, settings.ToJsonString());
        var error = Assert.Throws<ModelLoadException>(() => SentenceTransformersModules.Read(_dir, broken switch { "in_features" => 7, "shape" => 9, _ => 8 }));
        Assert.Contains(why, error.Message);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
