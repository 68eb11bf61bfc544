using Serving.Contracts;
using Serving.Contracts.Lora;
using Serving.Engine.Kernels;
using Serving.Engine.Lora;
using Serving.Engine.Model;
using Serving.Engine.Quantization;
using Serving.Engine.Tests.Model;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Support;

/// <summary>The checks every supported architecture passes, on a model folder: the scalar reference, and the CPU kernels against libtorch's ops.</summary>
internal static class ArchitectureChecks
{
    /// <summary>Float32 prefill of all but <paramref name="prompt"/>'s last token, then a decode step of it, give the scalar reference's logits at every position.</summary>
    public static void PrefillThenDecodeMatchReference(LoadedModel loaded, string dir, int[] prompt)
    {
        var reference = new ScalarReferenceModel(dir);
        using var cache = loaded.Model.CreateKvCache(1, 64);
        var kv = cache.Partition(0);

        using (var prefill = loaded.Model.Forward(ForwardBatch.Create([(kv, prompt[..^1], 0)]), cache, LogitsSelection.AllTokens))
        {
            var expected = reference.Forward(prompt[..^1]);
            var rows = LlamaModelTests.Rows(prefill);
            for (int i = 0; i < rows.Length; i++)
                LlamaModelTests.AssertClose(expected[i], rows[i], $"prefill position {i}");
        }

        using var decode = loaded.Model.Forward(ForwardBatch.Create([(kv, prompt[^1..], prompt.Length - 1)]), cache);
        LlamaModelTests.AssertClose(reference.Forward(prompt)[^1], LlamaModelTests.Rows(decode)[0], "decode");
    }

    /// <summary>
    /// A mixed prefill then a decode step of two sequences on the CPU kernels and on libtorch's ops: float32 within the
    /// reference tolerance; bf16 — where a rounding that falls the other way moves everything after it — as close to the
    /// float32 model as libtorch's ops are (as <see cref="LlamaModelTests"/> compares them).
    /// </summary>
    public static void CpuKernelsAgreeWithLibtorchOps(string dir, int[] prompt, ScalarType dtype)
    {
        float[][] Run(ScalarType type, bool cpuKernels)
        {
            using var loaded = LoadedModel.Load(dir, type, CPU, 64);
            using var view = cpuKernels ? null : loaded.Model.WithKernels(new KernelOptions { CpuElementwise = false, CpuDecodeAttention = false });
            var m = view ?? loaded.Model;
            using var cache = m.CreateKvCache(2, 64);
            var (a, b) = (cache.Partition(0), cache.Partition(1));
            m.Forward(ForwardBatch.Create([(a, prompt, 0), (b, prompt[..3], 0)]), cache).Dispose();
            using var decode = m.Forward(ForwardBatch.Create([(a, new[] { 7 }, prompt.Length), (b, new[] { 8 }, 3)]), cache);
            return LlamaModelTests.Rows(decode);
        }

        var (kernels, ops) = (Run(dtype, true), Run(dtype, false));
        if (dtype == ScalarType.Float32)
        {
            for (int i = 0; i < kernels.Length; i++)
                LlamaModelTests.AssertClose(ops[i], kernels[i], $"row {i}");
            return;
        }

        var exact = Run(ScalarType.Float32, true);
        float Distance(float[][] rows) => rows.Select((r, i) => r.Zip(exact[i], (x, y) => MathF.Abs(x - y)).Max()).Max();
        float kernelError = Distance(kernels), opsError = Distance(ops);
        Assert.True(kernelError <= 1.5f * opsError + 1e-3f, $"max |bf16 − f32| logit: CPU kernels {kernelError}, libtorch ops {opsError}");
    }

    /// <summary>
    /// Four decode steps of an adapted row beside a base one on the fused CPU decode path (where this CPU has its kernels)
    /// and on the per-op path: the same bits; in float32 the base row's last step also the scalar reference's.
    /// </summary>
    public static void FusedDecodeMatchesPerOpPath(string dir, ScalarType dtype, WeightQuantization quantization = WeightQuantization.None)
    {
        using var loaded = LoadedModel.Load(dir, dtype, CPU, 64, quantization: quantization);
        var adapter = RandomAdapters.Create(loaded.Config, "a", 8, LoraTargets.Adaptable(loaded.Config), 5, scale: 2.0f);
        loaded.Model.EnableAdapters(slots: 1, maxRank: 8).Load(0, adapter);
        int[][] prompts = [[464, 2068, 786, 2183, 40], [7, 8, 9]];

        List<float[]> Run(bool fused)
        {
            using var view = fused ? null : loaded.Model.WithKernels(new KernelOptions { FusedCpuDecode = false });
            var model = view ?? loaded.Model;
            using var cache = model.CreateKvCache(2, 64);
            IReadOnlyList<AdapterSlotWeight>[] rows = [[(0, 1f)], []];
            model.Forward(ForwardBatch.Create([(cache.Partition(0), prompts[0], 0), (cache.Partition(1), prompts[1], 0)]), cache, LogitsSelection.LastTokenPerSequence,
                LoraBatchMapping.ForSequences([prompts[0].Length, prompts[1].Length], rows)).Dispose();
            var logits = new List<float[]>();
            for (int step = 0; step < 4; step++)
            {
                using var decode = model.Forward(ForwardBatch.Create([(cache.Partition(0), new[] { 100 + step }, prompts[0].Length + step),
                    (cache.Partition(1), new[] { 200 + step }, prompts[1].Length + step)]), cache, LogitsSelection.LastTokenPerSequence, LoraBatchMapping.ForSequences([1, 1], rows));
                logits.AddRange(LlamaModelTests.Rows(decode));
            }

            return logits;
        }

        long before = loaded.Model.FusedDecodeSteps;
        var fused = Run(true);
        bool ran = loaded.Model.FusedDecodeSteps > before;
        var plain = Run(false);

        for (int i = 0; i < plain.Count; i++)
            Assert.Equal(plain[i], fused[i]);
        Assert.True(ran || !(VectorExp.IsSupported && SmallBatchGemv.IsAvailable), "the fused path did not run");
        if (dtype == ScalarType.Float32)
            LlamaModelTests.AssertClose(new ScalarReferenceModel(dir).Forward([.. prompts[1], 200, 201, 202, 203])[^1], fused[^1], "the base row's last step");
    }

    /// <summary>Float32 prefill of <paramref name="prompt"/> in chunks of <paramref name="chunks"/> tokens over the cached prefix: the scalar reference's logits at every position.</summary>
    public static void ChunkedPrefillMatchesReference(string dir, int[] prompt, int[] chunks)
    {
        using var loaded = LoadedModel.Load(dir, ScalarType.Float32, CPU, 64);
        var reference = new ScalarReferenceModel(dir).Forward(prompt);
        using var cache = loaded.Model.CreateKvCache(1, 64);
        int start = 0;
        foreach (int n in chunks)
        {
            using var chunk = loaded.Model.Forward(ForwardBatch.Create([(cache.Partition(0), prompt[start..(start + n)], start)]), cache, LogitsSelection.AllTokens);
            var rows = LlamaModelTests.Rows(chunk);
            for (int k = 0; k < n; k++)
                LlamaModelTests.AssertClose(reference[start + k], rows[k], $"chunk from {start}, position {start + k}");
            start += n;
        }
    }

    /// <summary>An adapter on every projection it may adapt, in float32: the scalar reference's logits with the adapter added.</summary>
    public static void AdapterMatchesReference(string dir, int[] prompt)
    {
        using var loaded = LoadedModel.Load(dir, ScalarType.Float32, CPU, 64);
        var adapter = RandomAdapters.Create(loaded.Config, "a", 8, LoraTargets.Adaptable(loaded.Config), 3, scale: 2.0f);
        loaded.Model.EnableAdapters(slots: 1, maxRank: 8).Load(0, adapter);
        using var cache = loaded.Model.CreateKvCache(1, 64);
        IReadOnlyList<AdapterSlotWeight> rows = [(0, 1f)];

        using var logits = loaded.Model.Forward(ForwardBatch.Create([(cache.Partition(0), prompt, 0)]), cache, LogitsSelection.LastTokenPerSequence,
            LoraBatchMapping.ForSequences([prompt.Length], [rows]));

        LlamaModelTests.AssertClose(new ScalarReferenceModel(dir, adapters: [(adapter, 1f)]).Forward(prompt)[^1], LlamaModelTests.Rows(logits)[0], "with the adapter");
    }

    /// <summary>The float32 logits after <paramref name="prompt"/>, for comparing checkpoints that should hold the same model bit for bit.</summary>
    public static float[] LastLogits(string dir, int[] prompt)
    {
        using var loaded = LoadedModel.Load(dir, ScalarType.Float32, CPU, 64);
        using var cache = loaded.Model.CreateKvCache(1, 64);
        using var logits = loaded.Model.Forward(ForwardBatch.Create([(cache.Partition(0), prompt, 0)]), cache);
        return LlamaModelTests.Rows(logits)[0];
    }
}
