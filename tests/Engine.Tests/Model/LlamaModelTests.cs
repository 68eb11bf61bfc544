using Serving.Engine.Kernels;
using System.Runtime.InteropServices;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model;

[Collection(TinyModelCollection.Name)]
public sealed class LlamaModelTests(TinyModelFixture fixture)
{
    private const float Tolerance = 1e-4f;
    private static readonly int[] PromptA = [464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13];
    private static readonly int[] PromptB = [40, 1101, 257, 1332];
    private static readonly int[] PromptC = [15496, 11, 995, 0, 50256, 318, 994];

    private LlamaModel Model => fixture.Loaded.Model;

    [Fact]
    public void Forward_Prefill_MatchesScalarReferenceAtEveryPosition()
    {
        var reference = new ScalarReferenceModel(fixture.Directory).Forward(PromptA);
        using var cache = Model.CreateKvCache(2, 64);
        var kv = cache.Partition(0);
        using var logits = Model.Forward(ForwardBatch.Create([(kv, PromptA, 0)]), cache, LogitsSelection.AllTokens);
        var rows = Rows(logits);
        Assert.Equal(PromptA.Length, rows.Length);
        for (int i = 0; i < PromptA.Length; i++)
            AssertClose(reference[i], rows[i], $"prefill position {i}");
    }

    [Fact]
    public void Forward_PromptChunksOverACachedPrefix_MatchScalarReferenceAtEveryPosition()
    {
        // Chunks of 3, 4 and 3 tokens: each attends causally to its own tokens and to the prefix already in the cache.
        var reference = new ScalarReferenceModel(fixture.Directory).Forward(PromptA);
        using var cache = Model.CreateKvCache(2, 64);
        var kv = cache.Partition(0);
        int start = 0;
        foreach (int n in new[] { 3, 4, 3 })
        {
            using var logits = Model.Forward(ForwardBatch.Create([(kv, PromptA[start..(start + n)], start)]), cache, LogitsSelection.AllTokens);
            var rows = Rows(logits);
            for (int i = 0; i < n; i++)
                AssertClose(reference[start + i], rows[i], $"chunk from {start}, position {start + i}");
            start += n;
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Forward_MixedBatch_CpuKernelsAndLibtorchOpsGiveTheSameLogits(bool bfloat16)
    {
        using var loaded = bfloat16 ? LoadedModel.Load(fixture.Directory, TorchSharp.torch.ScalarType.BFloat16, TorchSharp.torch.CPU, 64) : null;
        var model = loaded?.Model ?? Model;
        float[][] Run(bool cpuKernels)
        {
            using var view = cpuKernels ? null : model.WithKernels(new KernelOptions { CpuElementwise = false, CpuDecodeAttention = false });
            var m = view ?? model;
            using var cache = m.CreateKvCache(3, 64);
            var a = cache.Partition(0);
            var b = cache.Partition(1);
            var c = cache.Partition(2);
            m.Forward(ForwardBatch.Create([(a, PromptA, 0), (b, PromptB, 0)]), cache).Dispose();
            var rows = new List<float[]>();
            using (var decode = m.Forward(ForwardBatch.Create([(a, new[] { 7 }, PromptA.Length), (b, new[] { 8 }, PromptB.Length)]), cache))
                rows.AddRange(Rows(decode));
            using (var mixed = m.Forward(ForwardBatch.Create([(a, new[] { 9 }, PromptA.Length + 1), (c, PromptC, 0), (b, new[] { 10 }, PromptB.Length + 1)]), cache))
                rows.AddRange(Rows(mixed));
            return rows.ToArray();
        }

        var fast = Run(true);
        var ops = Run(false);
        if (!bfloat16)
        {
            for (int i = 0; i < fast.Length; i++)
            {
                float diff = fast[i].Zip(ops[i], (x, y) => MathF.Abs(x - y)).Max();
                Assert.True(diff <= Tolerance, $"row {i}: max |CPU kernels − libtorch ops| = {diff}");
            }

            return;
        }

        // bf16: a rounding tie that falls the other way in one layer moves everything after it, so the two paths are
        // compared by their distance from the float32 model: the kernels must be as accurate as libtorch's ops.
        var exact = RunFloat32();
        float Distance(float[][] rows) => rows.Select((r, i) => r.Zip(exact[i], (x, y) => MathF.Abs(x - y)).Max()).Max();
        float fastError = Distance(fast), opsError = Distance(ops);
        Assert.True(fastError <= 1.5f * opsError + 1e-3f, $"max |bf16 − f32| logit: CPU kernels {fastError}, libtorch ops {opsError}");

        float[][] RunFloat32()
        {
            var saved = model;
            model = Model;
            try
            {
                return Run(true);
            }
            finally
            {
                model = saved;
            }
        }
    }

    [Fact]
    public void Forward_DecodeSteps_MatchScalarReferenceAtEachStep()
    {
        var scalar = new ScalarReferenceModel(fixture.Directory);
        using var cache = Model.CreateKvCache(1, 64);
        var kv = cache.Partition(0);
        var tokens = PromptB.ToList();
        using (var prefill = Model.Forward(ForwardBatch.Create([(kv, tokens, 0)]), cache))
            AssertClose(scalar.Forward(tokens)[^1], Rows(prefill)[0], "prefill");
        for (int step = 0; step < 6; step++)
        {
            int next = 1000 + 37 * step;
            tokens.Add(next);
            using var logits = Model.Forward(ForwardBatch.Create([(kv, new[] { next }, tokens.Count - 1)]), cache);
            AssertClose(scalar.Forward(tokens)[^1], Rows(logits)[0], $"decode step {step}");
        }
    }

    [Fact]
    public void Forward_BatchedDecodeOfDifferentLengths_EqualsEachSequenceAlone()
    {
        int[][] prompts = [PromptA, PromptB, PromptC];
        int[][] continuations = [[11, 12, 13], [21, 22, 23], [31, 32, 33]];

        // Alone: each sequence in its own cache.
        var alone = new List<float[][]>();
        for (int s = 0; s < prompts.Length; s++)
        {
            using var cache = Model.CreateKvCache(1, 64);
            var kv = cache.Partition(0);
            Model.Forward(ForwardBatch.Create([(kv, prompts[s], 0)]), cache).Dispose();
            var steps = new List<float[]>();
            for (int i = 0; i < 3; i++)
            {
                using var l = Model.Forward(ForwardBatch.Create([(kv, new[] { continuations[s][i] }, prompts[s].Length + i)]), cache);
                steps.Add(Rows(l)[0]);
            }

            alone.Add(steps.ToArray());
        }

        // Together: one mixed prefill batch, then batched decode over non-contiguous slots.
        using var shared = Model.CreateKvCache(5, 64);
        var handles = Enumerable.Range(0, 5).Select(shared.Partition).ToArray();
        var used = new[] { handles[4], handles[1], handles[2] };
        Model.Forward(ForwardBatch.Create(prompts.Select((p, s) => (used[s], (IReadOnlyList<int>)p, 0)).ToList()), shared).Dispose();
        for (int i = 0; i < 3; i++)
        {
            var batch = ForwardBatch.Create(prompts.Select((p, s) => (used[s], (IReadOnlyList<int>)new[] { continuations[s][i] }, p.Length + i)).ToList());
            using var logits = Model.Forward(batch, shared);
            var rows = Rows(logits);
            for (int s = 0; s < prompts.Length; s++)
                AssertClose(alone[s][i], rows[s], $"sequence {s} step {i}");
        }
    }

    [Fact]
    public void Forward_MixedPrefillAndDecodeInOneBatch_EqualsSeparateSteps()
    {
        using var cache = Model.CreateKvCache(2, 64);
        var a = cache.Partition(0);
        var b = cache.Partition(1);
        Model.Forward(ForwardBatch.Create([(a, PromptA, 0)]), cache).Dispose();
        using var mixed = Model.Forward(ForwardBatch.Create([(a, new[] { 99 }, PromptA.Length), (b, PromptC, 0)]), cache);

        using var cache2 = Model.CreateKvCache(2, 64);
        var a2 = cache2.Partition(0);
        var b2 = cache2.Partition(1);
        Model.Forward(ForwardBatch.Create([(a2, PromptA, 0)]), cache2).Dispose();
        using var decodeOnly = Model.Forward(ForwardBatch.Create([(a2, new[] { 99 }, PromptA.Length)]), cache2);
        using var prefillOnly = Model.Forward(ForwardBatch.Create([(b2, PromptC, 0)]), cache2);
        AssertClose(Rows(decodeOnly)[0], Rows(mixed)[0], "decode row");
        AssertClose(Rows(prefillOnly)[0], Rows(mixed)[1], "prefill row");
    }

    [Fact]
    public void Forward_KvCacheDecode_EqualsFullRecomputation()
    {
        var tokens = PromptC.ToList();
        using var cache = Model.CreateKvCache(2, 64);
        var kv = cache.Partition(0);
        Model.Forward(ForwardBatch.Create([(kv, tokens, 0)]), cache).Dispose();
        for (int step = 0; step < 5; step++)
        {
            tokens.Add(500 + step);
            using var incremental = Model.Forward(ForwardBatch.Create([(kv, new[] { tokens[^1] }, tokens.Count - 1)]), cache);
            using var full = Model.Forward(ForwardBatch.Create([(cache.Partition(1), tokens, 0)]), cache);
            AssertClose(Rows(full)[0], Rows(incremental)[0], $"step {step}");
        }
    }

    [Fact]
    public void Forward_TokenOutsideVocabulary_ThrowsNamingTheToken()
    {
        using var cache = Model.CreateKvCache(1, 16);
        var kv = cache.Partition(0);
        var ex = Assert.Throws<ArgumentException>(() => Model.Forward(ForwardBatch.Create([(kv, new[] { 1, 999_999 }, 0)]), cache));
        Assert.Contains("999999", ex.Message);
    }

    [Fact]
    public void Forward_BeyondContextLimit_Throws()
    {
        using var cache = Model.CreateKvCache(1, 8);
        var kv = cache.Partition(0);
        Assert.Throws<ArgumentException>(() => Model.Forward(ForwardBatch.Create([(kv, Enumerable.Range(1, 9).ToArray(), 0)]), cache));
    }

    internal static float[][] Rows(Tensor logits)
    {
        var flat = MemoryMarshal.Cast<byte, float>(logits.contiguous().bytes).ToArray();
        int vocab = (int)logits.shape[1];
        return Enumerable.Range(0, (int)logits.shape[0]).Select(r => flat.AsSpan(r * vocab, vocab).ToArray()).ToArray();
    }

    internal static void AssertClose(float[] expected, float[] actual, string what, float tolerance = Tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        float worst = 0;
        int at = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            float diff = Math.Abs(expected[i] - actual[i]);
            if (diff > worst)
                (worst, at) = (diff, i);
        }

        Assert.True(worst <= tolerance, $"{what}: max |Δlogit| = {worst} at token {at} (expected {expected[at]}, got {actual[at]})");
    }
}
