using Serving.Authoring.Synthetic;
using Serving.Engine.Model;
using static TorchSharp.torch;

namespace Serving.Tests.Shared;

/// <summary>One generated tiny model (float32 on disk), loaded in float32 on CPU, shared by the tests of a collection.</summary>
public sealed class TinyModelFixture : IDisposable
{
    public TinyModelFixture()
    {
        Directory = TestDirectories.Create("tiny-model");
        SyntheticModelWriter.Write(Directory, new SyntheticModelSpec { Preset = ModelPreset.Tiny, Seed = 7 });
        Loaded = LoadedModel.Load(Directory, ScalarType.Float32, CPU, maxPositions: 2048);
    }

    public string Directory { get; }
    internal LoadedModel Loaded { get; }

    public void Dispose()
    {
        Loaded.Dispose();
        TestDirectories.Delete(Directory);
    }
}
