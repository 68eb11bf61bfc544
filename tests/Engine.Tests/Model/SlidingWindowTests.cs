using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Engine.Kernels;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model;

/// <summary>
/// Mistral's sliding window (<c>sliding_window</c> W in config.json): a token at position p attends to p − W + 1 … p.
/// Prefill whole or in chunks over a cached prefix, decode steps on the fused CPU path and on libtorch's ops, all give
/// the scalar reference's windowed logits — which differ from full attention once a context is longer than W.
/// </summary>
public sealed class SlidingWindowTests : IDisposable
{
    private const int Window = 4;
    private static readonly int[] Prompt = [464, 2068, 786, 2183, 40, 1101, 257, 1332, 13, 198];
    private readonly string _root = TestDirectories.Create("sliding-window");

    private string Model(string name, SyntheticModelSpec spec, int? window)
    {
        string dir = Path.Combine(_root, name);
        SyntheticModelWriter.Write(dir, spec with { Architecture = "MistralForCausalLM" });
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!;
        config["sliding_window"] = window;
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        return dir;
    }

    [Fact]
    public void Forward_PrefillWholeAndInChunks_MatchTheWindowedReference()
    {
        string dir = Model("tiny", new SyntheticModelSpec { Seed = 47 }, Window);
        using var loaded = LoadedModel.Load(dir, ScalarType.Float32, CPU, 64);
        var reference = new ScalarReferenceModel(dir).Forward(Prompt);
        var full = new ScalarReferenceModel(Model("tiny-full", new SyntheticModelSpec { Seed = 47 }, null)).Forward(Prompt);
        Assert.True(reference[^1].Zip(full[^1], (a, b) => MathF.Abs(a - b)).Max() > 1e-3f, "the window changed nothing");
        LlamaModelTests.AssertClose(full[Window - 1], reference[Window - 1], "inside the window");

        using var cache = loaded.Model.CreateKvCache(2, 64);
        using (var whole = loaded.Model.Forward(ForwardBatch.Create([(cache.Partition(0), Prompt, 0)]), cache, LogitsSelection.AllTokens))
        {
            var rows = LlamaModelTests.Rows(whole);
            for (int i = 0; i < Prompt.Length; i++)
                LlamaModelTests.AssertClose(reference[i], rows[i], $"whole prefill, position {i}");
        }

        int start = 0;
        foreach (int n in new[] { 3, 5, 2 })
        {
            using var chunk = loaded.Model.Forward(ForwardBatch.Create([(cache.Partition(1), Prompt[start..(start + n)], start)]), cache, LogitsSelection.AllTokens);
            var rows = LlamaModelTests.Rows(chunk);
            for (int k = 0; k < n; k++)
                LlamaModelTests.AssertClose(reference[start + k], rows[k], $"chunk from {start}, position {start + k}");
            start += n;
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Forward_DecodeStepsOfDifferentLengths_MatchTheWindowedReference(bool fusedDecode)
    {
        // The tile-grid shape, so that float32 decode steps take the fused CPU path where this CPU has its kernels.
        string dir = Model("tile-grid", TileGridModel.Spec(seed: 53), Window);
        using var loaded = LoadedModel.Load(dir, ScalarType.Float32, CPU, 64);
        using var view = fusedDecode ? null : loaded.Model.WithKernels(new KernelOptions { FusedCpuDecode = false, CpuDecodeAttention = false, CpuElementwise = false });
        var model = view ?? loaded.Model;
        var scalar = new ScalarReferenceModel(dir);
        var sequences = new List<List<int>> { Prompt[..2].ToList(), Prompt[..7].ToList() };
        using var cache = model.CreateKvCache(2, 64);
        using (model.Forward(ForwardBatch.Create([(cache.Partition(0), sequences[0], 0), (cache.Partition(1), sequences[1], 0)]), cache))
        {
        }

        long before = loaded.Model.FusedDecodeSteps;
        for (int step = 0; step < 5; step++)
        {
            var batch = new List<(KvBlockTable, IReadOnlyList<int>, int)>();
            for (int i = 0; i < 2; i++)
            {
                sequences[i].Add(100 + 13 * step + i);
                batch.Add((cache.Partition(i), new[] { sequences[i][^1] }, sequences[i].Count - 1));
            }

            using var logits = model.Forward(ForwardBatch.Create(batch), cache);
            var rows = LlamaModelTests.Rows(logits);
            for (int i = 0; i < 2; i++)
                LlamaModelTests.AssertClose(scalar.Forward(sequences[i])[^1], rows[i], $"step {step}, sequence {i} of length {sequences[i].Count}");
        }

        if (!fusedDecode)
            Assert.Equal(before, loaded.Model.FusedDecodeSteps);
        else if (VectorExp.IsSupported && SmallBatchGemv.IsAvailable)
            Assert.Equal(before + 5, loaded.Model.FusedDecodeSteps);
    }

    public void Dispose() => TestDirectories.Delete(_root);
}
