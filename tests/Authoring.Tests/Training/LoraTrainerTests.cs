using System.Text.Json.Nodes;
using Serving.Authoring.Training;
using Serving.Contracts.Safetensors;
using Serving.Engine.Model;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Authoring.Tests.Training;

[Collection(TinyModelCollection.Name)]
public sealed class LoraTrainerTests(TinyModelFixture fixture)
{
    private static readonly LoraTrainingOptions Options = new()
    {
        Rank = 4, Alpha = 8, Targets = ["q_proj", "v_proj", "down_proj"], Steps = 25, BatchSize = 4, LearningRate = 1e-2, Seed = 3,
    };

    private static List<TrainingExample> Data(LoadedModel model) =>
        Enumerable.Range(0, 12).Select(i => new TrainingExample(model.Tokenizer.Encode($"item {i}:"), model.Tokenizer.Encode(" done done", addSpecialTokens: false))).ToList();

    [Fact]
    public void Train_ToyTask_LossFallsAndAPeftFolderIsWritten()
    {
        using var model = LoadedModel.Load(fixture.Directory, ScalarType.Float32, CPU, 256);
        string outDir = TestDirectories.Create("trained");
        try
        {
            var steps = new List<int>();
            var losses = new LoraTrainer(model, Options) { Progress = (step, _, _) => steps.Add(step) }.Train(Data(model), outDir);

            Assert.Equal(Enumerable.Range(1, 25), steps);
            Assert.True(losses[^1] < losses[0] * 0.5, $"loss {losses[0]:F3} → {losses[^1]:F3}");
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "adapter_config.json")))!;
            Assert.Equal(4, (int)config["r"]!);
            Assert.Equal(["q_proj", "v_proj", "down_proj"], config["target_modules"]!.AsArray().Select(t => (string)t!));
            var file = SafetensorsFile.Open(Path.Combine(outDir, "adapter_model.safetensors"));
            var a = file.Tensors["base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight"];
            var b = file.Tensors["base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"];
            Assert.Equal([4L, model.Config.HiddenSize], a.Shape);
            Assert.Equal([(long)model.Config.HiddenSize, 4L], b.Shape);
        }
        finally
        {
            TestDirectories.Delete(outDir);
        }
    }

    [Fact]
    public void Train_SameSeedTwice_SameBytes()
    {
        string first = TestDirectories.Create("trained-a"), second = TestDirectories.Create("trained-b");
        try
        {
            foreach (string dir in new[] { first, second })
            {
                using var model = LoadedModel.Load(fixture.Directory, ScalarType.Float32, CPU, 256);
                new LoraTrainer(model, Options with { Steps = 5 }).Train(Data(model), dir);
            }

            Assert.Equal(File.ReadAllBytes(Path.Combine(first, "adapter_model.safetensors")), File.ReadAllBytes(Path.Combine(second, "adapter_model.safetensors")));
        }
        finally
        {
            TestDirectories.Delete(first);
            TestDirectories.Delete(second);
        }
    }

    [Fact]
    public void Train_Dora_LossFallsAndMagnitudesAreWrittenAsPeftDora()
    {
        using var model = LoadedModel.Load(fixture.Directory, ScalarType.Float32, CPU, 256);
        string outDir = TestDirectories.Create("trained-dora");
        try
        {
            var losses = new LoraTrainer(model, Options with { UseDora = true }).Train(Data(model), outDir);

            Assert.True(losses[^1] < losses[0] * 0.5, $"loss {losses[0]:F3} → {losses[^1]:F3}");
            Assert.True((bool)JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "adapter_config.json")))!["use_dora"]!);
            var file = SafetensorsFile.Open(Path.Combine(outDir, "adapter_model.safetensors"));
            foreach (string module in new[] { "self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj" })
                for (int layer = 0; layer < model.Config.NumLayers; layer++)
                {
                    var m = file.Tensors[$"base_model.model.model.layers.{layer}.{module}.lora_magnitude_vector.weight"];
                    var b = file.Tensors[$"base_model.model.model.layers.{layer}.{module}.lora_B.weight"];
                    Assert.Equal([b.Shape[0]], m.Shape);
                }

            // Training moved the magnitudes away from their start, the base weight's row norms.
            var magnitude = file.Tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector.weight"];
            var bytes = new byte[magnitude.ByteLength];
            file.ReadInto(magnitude, bytes);
            var values = new float[bytes.Length / 4];
            Buffer.BlockCopy(bytes, 0, values, 0, bytes.Length);
            var (weight, _) = model.Model.Weights.Projection(model.Config, 0, Serving.Contracts.Lora.LoraTarget.Q);
            using (weight)
            using (var norms = weight.pow(2).sum(1).sqrt())
                Assert.True(values.Zip(norms.data<float>().ToArray()).Max(p => Math.Abs(p.First - p.Second)) > 1e-3);
        }
        finally
        {
            TestDirectories.Delete(outDir);
        }
    }

    [Fact]
    public void Train_BadOptions_Throw()
    {
        using var model = LoadedModel.Load(fixture.Directory, ScalarType.Float32, CPU, 256);
        Assert.Throws<ArgumentException>(() => new LoraTrainer(model, Options with { Rank = 0 }).Train(Data(model), "unused"));
        Assert.Throws<ArgumentException>(() => new LoraTrainer(model, Options with { Targets = ["nope"] }).Train(Data(model), "unused"));
        Assert.Throws<ArgumentException>(() => new LoraTrainer(model, Options).Train([], "unused"));
    }
}
