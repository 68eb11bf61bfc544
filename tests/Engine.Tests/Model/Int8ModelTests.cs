using Serving.Authoring.Synthetic;
using Serving.Contracts;
using Serving.Contracts.Lora;
using Serving.Engine.Checkpoints;
using Serving.Engine.Kernels;
using Serving.Engine.Lora;
using Serving.Engine.Model;
using Serving.Engine.Quantization;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model;

/// <summary>
/// A model loaded with <c>--quantization int8</c>: what is quantized, how far its logits are from float32's, and LoRA on the
/// quantized base (batched = alone = an independent reference that adds <c>s·B·A·x</c> to the int8 base's output).
/// </summary>
public sealed class Int8ModelTests : IDisposable
{
    private static readonly int[][] Prompts = [[464, 2068, 7586, 21831], [40, 1101, 257, 1332, 13, 198], [15496, 11, 995], [50256, 318, 994, 7, 8]];
    private readonly string _root = TestDirectories.Create("int8-model");

    private string ModelDir(bool tied)
    {
        string dir = Path.Combine(_root, tied ? "tied" : "untied");
        if (!Directory.Exists(dir))
            SyntheticModelWriter.Write(dir, new SyntheticModelSpec { Seed = 31, TieWordEmbeddings = tied });
        return dir;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Load_Int8_ProjectionsAndLmHeadQuantizedNormsAndUntiedEmbeddingNot(bool tied)
    {
        using var loaded = LoadedModel.Load(ModelDir(tied), ScalarType.BFloat16, CPU, 64, quantization: WeightQuantization.Int8);
        var w = loaded.Model.Weights;

        Assert.Equal(WeightQuantization.Int8, w.Quantization);
        Assert.All(w.Layers.SelectMany(l => l.Projections).Append(w.LmHead), p => Assert.True(p.IsQuantized));
        Assert.Equal(tied, w.Embed.IsQuantized);
        Assert.Equal(ScalarType.BFloat16, w.FinalNorm.dtype);
        var projections = w.Layers.SelectMany(l => l.Projections).Append(w.LmHead).ToList();
        // int8 values (rows padded to blocks of 64, inputs to groups of 4) plus 8 bytes of scale and row sum per row, where
        // bf16 took two bytes per value.
        long saved = projections.Sum(p => 2L * p.Outputs * p.Inputs - (p.Outputs + 63L) / 64 * 64 * ((p.Inputs + 3L) / 4 * 4) - 8L * p.Outputs);
        Assert.Equal(saved, w.UnquantizedBytes(ScalarType.BFloat16) - w.TotalBytes);
    }

    [Fact]
    public void Load_Int8OnAnotherDevice_RefusedNamingIt()
    {
        var ex = Assert.Throws<ModelLoadException>(() =>
            LoadedModel.Load(ModelDir(false), ScalarType.BFloat16, new Device(TorchSharp.DeviceType.CUDA, 0), 64, quantization: WeightQuantization.Int8));

        Assert.Contains("cuda:0", ex.Message, StringComparison.Ordinal);
        Assert.Contains("CPU only", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_Int8WithFloat16_Refused()
    {
        var ex = Assert.Throws<ModelLoadException>(() => LoadedModel.Load(ModelDir(false), ScalarType.Float16, CPU, 64, quantization: WeightQuantization.Int8));

        Assert.Contains("bfloat16 or float32", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]    // a tied embedding is int8 too: lookups read dequantized rows
    public void Forward_Int8_EqualsTheReferenceInt8Model(bool tied)
    {
        string dir = ModelDir(tied);
        using var loaded = LoadedModel.Load(dir, ScalarType.Float32, CPU, 64, quantization: WeightQuantization.Int8);
        var reference = new ScalarReferenceModel(dir, int8: true);

        foreach (var prompt in Prompts.Take(2))
            LlamaModelTests.AssertClose(reference.Forward(prompt)[^1], LastLogits(loaded.Model, prompt, null), $"prompt of {prompt.Length}", ReferenceTolerance);
    }

    [Fact]
    public void Forward_Int8_LogitsWithinTheBoundOfFloat32()
    {
        string dir = ModelDir(false);
        using var exact = LoadedModel.Load(dir, ScalarType.Float32, CPU, 64);
        using var int8 = LoadedModel.Load(dir, ScalarType.Float32, CPU, 64, quantization: WeightQuantization.Int8);

        foreach (var prompt in Prompts)
        {
            var expected = LastLogits(exact.Model, prompt, null);
            var actual = LastLogits(int8.Model, prompt, null);
            // Each int8 operand is within half a step (max/254) of its value, so a product's relative error is about 1/127 at
            // worst and, summed over K terms of random sign, some 0.3 % of the row's norm; through two layers of the tiny
            // model that stays a few percent of the logits' spread (measured: about 1 %).
            float spread = expected.Max() - expected.Min();
            float worst = expected.Zip(actual, (e, a) => MathF.Abs(e - a)).Max();
            Assert.True(worst <= 0.05f * spread, $"max |int8 − f32| logit {worst}, logits spread {spread}");
            Assert.True(worst > 0, "int8 logits equal float32's: nothing was quantized");
        }
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData("reference")]
    [InlineData("gather")]
    public void Forward_Int8MixedAdapterBatch_EachRowEqualsItsRunAloneAndTheReference(string kernelName)
    {
        string dir = ModelDir(false);
        using var loaded = LoadedModel.Load(dir, ScalarType.Float32, CPU, 64, quantization: WeightQuantization.Int8);
        var c = loaded.Config;
        var a = RandomAdapters.Create(c, "a", 4, LoraTargets.All, 1, scale: 2.0f);
        var b = RandomAdapters.Create(c, "b", 8, [LoraTarget.Q, LoraTarget.V, LoraTarget.Down], 2, scale: (float)(16 / Math.Sqrt(8)));
        var arena = loaded.Model.EnableAdapters(slots: 2, maxRank: 8);
        arena.Load(0, a);
        arena.Load(1, b);
        IReadOnlyList<AdapterSlotWeight>[] rows = [[(0, 1f)], [(1, 1f)], [], [(0, 0.7f), (1, 0.3f)]];
        ILoraKernel kernel = kernelName switch { "cpu" => new CpuLoraKernel(), "gather" => new GatherLoraKernel(), _ => new ReferenceLoraKernel() };
        using var model = loaded.Model.WithKernels(new KernelOptions { Lora = kernel });

        using var cache = model.CreateKvCache(Prompts.Length, 64);
        var batch = ForwardBatch.Create(Prompts.Select((p, i) => (cache.Partition(i), (IReadOnlyList<int>)p, 0)).ToList());
        using var together = model.Forward(batch, cache, LogitsSelection.LastTokenPerSequence, LoraBatchMapping.ForSequences(Prompts.Select(p => p.Length).ToList(), rows));
        var batched = LlamaModelTests.Rows(together);

        for (int row = 0; row < Prompts.Length; row++)
        {
            var alone = LastLogits(model, Prompts[row], rows[row]);
            LlamaModelTests.AssertClose(alone, batched[row], $"row {row} batched vs alone ({kernelName})");
            var mix = rows[row].Select(e => (e.Slot == 0 ? a : b, e.Weight)).ToList();
            var expected = new ScalarReferenceModel(dir, int8: true, adapters: mix).Forward(Prompts[row])[^1];
            LlamaModelTests.AssertClose(expected, batched[row], $"row {row} vs int8 base + s·B·A·x ({kernelName})", ReferenceTolerance);
        }

        Assert.True(batched[0].Zip(batched[2], (x, y) => MathF.Abs(x - y)).Max() > 0.01f, "adapter a should change the logits");
    }

    /// <summary>
    /// The engine and the reference quantize activations computed in float32 and in double: an input element sitting on a
    /// rounding midpoint may round the other way, moving an output by one step of x times a weight, which stays far below this.
    /// </summary>
    private const float ReferenceTolerance = 2e-3f;

    private static float[] LastLogits(LlamaModel model, int[] prompt, IReadOnlyList<AdapterSlotWeight>? adapters)
    {
        using var cache = model.CreateKvCache(1, 64);
        var mapping = adapters is null ? null : LoraBatchMapping.ForSequences([prompt.Length], [adapters]);
        using var logits = model.Forward(ForwardBatch.Create([(cache.Partition(0), prompt, 0)]), cache, LogitsSelection.LastTokenPerSequence, mapping);
        return LlamaModelTests.Rows(logits)[0];
    }

    public void Dispose() => TestDirectories.Delete(_root);
}
