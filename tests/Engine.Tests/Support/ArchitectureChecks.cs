using Serving.Engine.Kernels;
using Serving.Engine.Model;
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
}
