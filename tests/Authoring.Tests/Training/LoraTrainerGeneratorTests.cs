using Serving.Authoring.Training;
using Serving.Engine.Model;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Authoring.Tests.Training;

[CollectionDefinition(nameof(LoraTrainerGeneratorTests), DisableParallelization = true)]
public sealed class LoraTrainerGeneratorCollection;

/// <summary>
/// Training draws its initial weights from a generator of its own: another thread using torch's global generator at the
/// same time (a second training, a test) must not change the adapter. Runs alone, since it disturbs the global generator.
/// </summary>
[Collection(nameof(LoraTrainerGeneratorTests))]
public sealed class LoraTrainerGeneratorTests : IClassFixture<TinyModelFixture>
{
    private static readonly LoraTrainingOptions Options = new()
    {
        Rank = 4, Alpha = 8, Targets = ["q_proj", "v_proj", "down_proj"], Steps = 3, BatchSize = 2, LearningRate = 1e-2, Seed = 3,
    };

    private readonly TinyModelFixture _fixture;

    public LoraTrainerGeneratorTests(TinyModelFixture fixture) => _fixture = fixture;

    [Fact]
    public async Task Train_GlobalGeneratorInUseMeanwhile_SameBytes()
    {
        string quiet = TestDirectories.Create("trained-quiet"), busy = TestDirectories.Create("trained-busy");
        try
        {
            Train(quiet);
            using var stop = new CancellationTokenSource();
            var noise = Task.Run(() =>
            {
                while (!stop.IsCancellationRequested)
                {
                    manual_seed(99);
                    rand(256).Dispose();
                }
            });
            try
            {
                for (int i = 0; i < 5; i++)    // several times: the window between seeding and drawing is short
                {
                    Train(busy);
                    Assert.Equal(File.ReadAllBytes(Path.Combine(quiet, "adapter_model.safetensors")), File.ReadAllBytes(Path.Combine(busy, "adapter_model.safetensors")));
                }
            }
            finally
            {
                await stop.CancelAsync();
                await noise;
            }
        }
        finally
        {
            TestDirectories.Delete(quiet);
            TestDirectories.Delete(busy);
        }
    }

    private void Train(string dir)
    {
        using var model = LoadedModel.Load(_fixture.Directory, ScalarType.Float32, CPU, 256);
        var data = Enumerable.Range(0, 6).Select(i => new TrainingExample(model.Tokenizer.Encode($"item {i}:"), model.Tokenizer.Encode(" done", addSpecialTokens: false))).ToList();
        new LoraTrainer(model, Options).Train(data, dir);
    }
}
