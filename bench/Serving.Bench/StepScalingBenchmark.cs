using System.Diagnostics;
using Serving.Engine.Generation;
using Serving.Engine.Lora;
using Serving.Engine.Model;
using static TorchSharp.torch;
using Serving.Contracts.Generation;

namespace Serving.Bench;

/// <summary>
/// How an all-decode step's time grows with its rows, engine only (no server, no scheduler): the bench preset in
/// bfloat16 (as bench serving runs it), steps of B rows through <see cref="GenerationStepper"/>, without adapters and with the rows
/// spread over 8 rank-16 adapters, split into the stepper's parts (forward call, device wait + logits to host, sampling).
/// On a GPU an ideal step costs the same for 1 row as for 32; what it gains per row is what the host adds per row.
/// </summary>
/// <param name="modelDir">The bench preset's folder (or any Llama-family model's).</param>
/// <param name="device"><c>cpu</c>, <c>cuda</c>, <c>cuda:N</c>.</param>
/// <param name="steps">Timed decode steps per configuration and row count (the median is reported).</param>
/// <param name="promptLength">Prompt tokens of every row.</param>
/// <param name="libtorchOps">On CPU, force the path CUDA takes (libtorch op chains, fused attention over gathered K/V,
/// <see cref="Serving.Engine.Kernels.GatherLoraKernel"/>); with a small model the step is then mostly host work, as on a GPU.</param>
internal sealed class StepScalingBenchmark(string modelDir, string device, int steps, int promptLength, bool libtorchOps = false)
{
    private static readonly int[] Rows = [1, 4, 8, 16, 32];
    private const int Adapters = 8, Rank = 16;

    public BenchReport Run()
    {
        // The server's native settings (oneDNN cache cap, glibc arenas and mmap threshold), so the engine alone runs as it
        // does inside a server; the H100 runs of 2026-11-28 were made before this and ran with glibc's defaults.
        Serving.Engine.Runtime.NativeRuntimeDefaults.Apply();
        var dev = new Device(device);
        var dtype = ScalarType.BFloat16;                  // as bench serving runs its servers
        var report = new BenchReport($"Decode step vs rows, engine only: bench preset ({dtype}) on {device}", [.. Rows.Select(b => $"B={b}")]);
        report.Context("device", device);
        report.Context("timed_steps", steps);
        report.Context("prompt_tokens", promptLength);
        report.Context("libtorch_ops", libtorchOps);
        report.Context("model_dir", modelDir);
        report.Context("allocator_tuned_as_the_server", Serving.Engine.Runtime.NativeRuntimeDefaults.AllocatorTuned);
        var kernels = libtorchOps
            ? new Serving.Engine.Kernels.KernelOptions { CpuElementwise = false, CpuDecodeAttention = false, FusedCpuDecode = false, Lora = new Serving.Engine.Kernels.GatherLoraKernel() }
            : null;
        using var loaded = LoadedModel.Load(modelDir, dtype, dev, 1024, kernels: kernels);
        var model = loaded.Model;

        var arena = model.EnableAdapters(Adapters, Rank);
        for (int s = 0; s < Adapters; s++)
            arena.Load(s, LoraBenchmark.RandomAdapter(model, $"a{s}", (ulong)s + 1, Rank));
        using var cache = model.CreateKvCache(Rows.Max() + 1, promptLength + 3 * steps + 16);
        var stepper = new GenerationStepper(model, cache);
        WarmUp(loaded, stepper);
        foreach (bool adapters in new[] { false, true })
        {
            string name = adapters ? "8 adapters" : "base";
            var measured = Rows.Select(b => Measure(loaded, stepper, b, adapters)).ToArray();
            report.Add($"{name}: step", "ms", measured.Select(m => (double?)m.StepMs).ToArray());
            report.Add($"{name}: forward call", "ms", measured.Select(m => (double?)m.ForwardMs).ToArray());
            report.Add($"{name}: device wait + logits to host", "ms", measured.Select(m => (double?)m.LogitsMs).ToArray());
            report.Add($"{name}: sampling", "ms", measured.Select(m => (double?)m.SamplingMs).ToArray());
            report.Add($"{name}: step time added per row over B=1", "ms", measured.Select(m => m.Rows == 1 ? null : (double?)((m.StepMs - measured[0].StepMs) / (m.Rows - 1))).ToArray());
        }

        return report;
    }

    /// <summary>
    /// Both configurations' steps first, as a fresh process's are far slower (JIT, cold allocator caches), with each warm-up
    /// step's time on stderr: on the H100 machine steps also ran several times slower for stretches of seconds, and this
    /// series is where a run shows it.
    /// </summary>
    private void WarmUp(LoadedModel loaded, GenerationStepper stepper)
    {
        var times = new List<string>();
        for (int round = 0; round < 3; round++)
            foreach (bool adapters in new[] { true, false })
            {
                var sequences = Sequences(loaded, 8, adapters, 1000 * (round + 1));
                stepper.RunAll(sequences);
                for (int i = 0; i < steps; i++)
                {
                    long start = Stopwatch.GetTimestamp();
                    stepper.RunAll(sequences);
                    times.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds.ToString("F1", System.Globalization.CultureInfo.InvariantCulture));
                }
            }

        Console.Error.WriteLine($"steps: warm-up step times (ms), B=8, adapters and base alternating every {steps}: {string.Join(" ", times)}");
    }

    private List<SequenceState> Sequences(LoadedModel loaded, int rows, bool adapters, int seed) =>
        Enumerable.Range(0, rows).Select(i => new SequenceState(EngineBenchmark.Prompt(seed + i, promptLength, loaded.Config.VocabSize),
            new SamplingParams { Temperature = 0, MaxTokens = 3 * steps + 8, IgnoreEos = true }, loaded.Tokenizer, [],
            adapters ? [(i % Adapters, 1f)] : null)).ToList();

    private sealed record Measured(int Rows, double StepMs, double ForwardMs, double LogitsMs, double SamplingMs);

    private Measured Measure(LoadedModel loaded, GenerationStepper stepper, int rows, bool adapters)
    {
        var sequences = Sequences(loaded, rows, adapters, 0);
        for (int warm = 0; warm < 1 + steps / 2; warm++)
            stepper.RunAll(sequences);                      // the prefill, then decode steps until the caches are warm
        var wall = new List<double>();
        double forward = 0, logits = 0, sampling = 0;
        for (int i = 0; i < steps; i++)
        {
            long start = Stopwatch.GetTimestamp();
            stepper.RunAll(sequences);
            wall.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            forward += stepper.LastTimings.Forward.TotalMilliseconds;
            logits += stepper.LastTimings.LogitsToHost.TotalMilliseconds;
            sampling += stepper.LastTimings.Sampling.TotalMilliseconds;
        }

        wall.Sort();
        Console.Error.WriteLine($"steps: {(adapters ? "adapters" : "base")} B={rows}: median {wall[wall.Count / 2]:F2} ms");
        return new Measured(rows, wall[wall.Count / 2], forward / steps, logits / steps, sampling / steps);
    }
}
