using System.Diagnostics;
using Serving.Engine.Generation;
using Serving.Engine.Lora;
using Serving.Engine.Model;
using Serving.Engine.Quantization;
using static TorchSharp.torch;
using Serving.Contracts.Generation;

namespace Serving.Bench;

/// <summary>
/// How an all-decode step's time grows with its rows, engine only (no server, no scheduler): the bench preset in
/// bfloat16 (as bench serving runs it), steps of B rows through <see cref="GenerationStepper"/>, without adapters and with the rows
/// spread over 8 rank-16 adapters, split into the stepper's parts (forward call, device wait + logits to host, sampling).
/// On a GPU an ideal step costs the same for 1 row as for 32; what it gains per row is what the host adds per row.
/// On the CPU a step of a few rows is bound by reading the weights: the run measures the read bandwidth of the same cores
/// in the same process (<see cref="ReadBandwidth"/>) and reports each step against the time to read its weight bytes,
/// and the base steps of up to four rows once more with libtorch's GEMMs in place of <see cref="Serving.Engine.Kernels.SmallBatchGemv"/>.
/// Every configuration also reports the libtorch calls per step (<see cref="Serving.Engine.Runtime.LibtorchCallCount"/>)
/// and the managed bytes allocated per step, on every thread (the kernels' parts run on the OpenMP team's threads too).
/// </summary>
/// <param name="modelDir">The bench preset's folder (or any Llama-family model's).</param>
/// <param name="device"><c>cpu</c>, <c>cuda</c>, <c>cuda:N</c>.</param>
/// <param name="steps">Timed decode steps per configuration and row count (the median is reported).</param>
/// <param name="promptLength">Prompt tokens of every row.</param>
/// <param name="libtorchOps">On CPU, force the path CUDA takes (libtorch op chains, fused attention over gathered K/V,
/// <see cref="Serving.Engine.Kernels.GatherLoraKernel"/>); with a small model the step is then mostly host work, as on a GPU.</param>
/// <param name="dtype">bfloat16 (as bench serving runs its servers) or float32.</param>
/// <param name="rows">Row counts to measure (default 1, 4, 8, 16, 32).</param>
/// <param name="quantization">The base weights as the server's <c>--quantization</c> would load them (int8: the adapters on top
/// stay in <paramref name="dtype"/>).</param>
internal sealed class StepScalingBenchmark(string modelDir, string device, int steps, int promptLength, bool libtorchOps = false, ScalarType dtype = ScalarType.BFloat16,
    int[]? rows = null, WeightQuantization quantization = WeightQuantization.None)
{
    private readonly int[] _rows = rows ?? [1, 4, 8, 16, 32];
    private const int Adapters = 8, Rank = 16;

    public BenchReport Run()
    {
        // The server's native settings (oneDNN cache cap, glibc arenas and mmap threshold), so the engine alone runs as it
        // does inside a server; the H100 runs of 2026-11-28 were made before this and ran with glibc's defaults.
        Serving.Engine.Runtime.NativeRuntimeDefaults.Apply();
        var dev = new Device(device);
        var report = new BenchReport($"Decode step vs rows, engine only: bench preset ({dtype}) on {device}", [.. _rows.Select(b => $"B={b}")]);
        report.Context("device", device);
        report.Context("timed_steps", steps);
        report.Context("prompt_tokens", promptLength);
        report.Context("libtorch_ops", libtorchOps);
        report.Context("quantization", quantization.ToString());
        report.Context("model_dir", modelDir);
        report.Context("allocator_tuned_as_the_server", Serving.Engine.Runtime.NativeRuntimeDefaults.AllocatorTuned);
        var kernels = libtorchOps
            ? new Serving.Engine.Kernels.KernelOptions { CpuElementwise = false, CpuDecodeAttention = false, FusedCpuDecode = false, Lora = new Serving.Engine.Kernels.GatherLoraKernel() }
            : null;
        using var loaded = LoadedModel.Load(modelDir, dtype, dev, 1024, kernels: kernels, quantization: quantization);
        var model = loaded.Model;

        var arena = model.EnableAdapters(Adapters, Rank);
        for (int s = 0; s < Adapters; s++)
            arena.Load(s, LoraBenchmark.RandomAdapter(model, $"a{s}", (ulong)s + 1, Rank));
        using var cache = model.CreateKvCache(Math.Max(_rows.Max(), 8) + 1, promptLength + 3 * steps + 16);
        var stepper = new GenerationStepper(model, cache);
        WarmUp(loaded, stepper);
        long weightBytes = model.Weights.Layers.Sum(l => l.Projections.Sum(p => p.Bytes)) + model.Weights.LmHead.Bytes;
        bool cpu = dev.type == TorchSharp.DeviceType.CPU && Serving.Engine.Kernels.SmallBatchGemv.IsAvailable;
        double bandwidthBefore = cpu ? ReadBandwidth(weightBytes) : double.NaN;
        var series = new List<(string Name, Measured?[] Steps)>();
        foreach (bool adapters in new[] { false, true })
        {
            string name = adapters ? "8 adapters" : "base";
            var measured = _rows.Select(b => Measure(loaded, stepper, b, adapters)).ToArray();
            report.Add($"{name}: step", "ms", measured.Select(m => (double?)m.StepMs).ToArray());
            report.Add($"{name}: forward call", "ms", measured.Select(m => (double?)m.ForwardMs).ToArray());
            report.Add($"{name}: device wait + logits to host", "ms", measured.Select(m => (double?)m.LogitsMs).ToArray());
            report.Add($"{name}: sampling", "ms", measured.Select(m => (double?)m.SamplingMs).ToArray());
            report.Add($"{name}: step time added per row over B=1", "ms", measured.Select(m => m.Rows == 1 ? null : (double?)((m.StepMs - measured[0].StepMs) / (m.Rows - 1))).ToArray());
            report.Add($"{name}: projection GEMMs alone (interleaved with the steps)", "ms", measured.Select(m => (double?)m.GemmMs).ToArray());
            report.Add($"{name}: step / its projection GEMMs alone", "x", measured.Select(m => (double?)(m.StepMs / m.GemmMs)).ToArray());
            report.Add($"{name}: step / its projection GEMMs alone, median of pairs", "x", measured.Select(m => (double?)m.StepOverGemms).ToArray());
            report.Add($"{name}: libtorch calls per step", "calls", measured.Select(m => (double?)m.TensorsPerStep).ToArray());
            report.Add($"{name}: the same per layer", "calls", measured.Select(m => (double?)(m.TensorsPerStep / model.Config.NumLayers)).ToArray());
            report.Add($"{name}: managed bytes allocated per step", "bytes", measured.Select(m => (double?)m.ManagedBytesPerStep).ToArray());
            series.Add((name, measured));
        }

        if (cpu && !libtorchOps && model.Kernels.CpuSmallBatchProjections && quantization == WeightQuantization.None)
        {
            // The same weights and cache through libtorch's GEMMs: what the small-batch kernel changed, in this run.
            var gemm = new GenerationStepper(model.WithKernels(new Serving.Engine.Kernels.KernelOptions { CpuSmallBatchProjections = false }), cache);
            var measured = _rows.Select(b => b <= Serving.Engine.Kernels.SmallBatchGemv.MaxRows ? Measure(loaded, gemm, b, adapters: false) : null).ToArray();
            report.Add("base, libtorch GEMMs: step", "ms", measured.Select(m => m?.StepMs).ToArray());
            series.Add(("base, libtorch GEMMs", measured));
        }

        if (cpu && _rows.Contains(1))
        {
            // Where a one-row step's time goes: each kind of projection's own streaming rate (medians of the step's kinds).
            using var gemms = new ProjectionGemms(model, 1);
            var runs = Enumerable.Range(0, steps).Select(_ => gemms.RunTimed()).ToList();
            foreach (string kind in runs[0].Keys)
            {
                var rates = runs.Select(r => r[kind].Bytes / r[kind].Seconds / 1e9).Order().ToList();
                report.Context($"b1_gemv_gb_s_{kind}", Math.Round(rates[rates.Count / 2], 2));
            }
        }

        if (cpu)
        {
            // The faster of two probes, one before and one after the steps: the bound is what the machine can do.
            double bandwidthAfter = ReadBandwidth(weightBytes), bandwidth = Math.Max(bandwidthBefore, bandwidthAfter);
            double readMs = weightBytes / bandwidth * 1e3;
            foreach (var (name, measured) in series)
                report.Add($"{name}: step / time to read the weights", "x", measured.Select(m => m is null ? null : (double?)(m.StepMs / readMs)).ToArray());
            report.Context("weight_bytes_read_per_step", weightBytes);
            report.Context("read_bandwidth_gb_s_before", Math.Round(bandwidthBefore / 1e9, 2));
            report.Context("read_bandwidth_gb_s_after", Math.Round(bandwidthAfter / 1e9, 2));
            report.Context("time_to_read_the_weights_ms", Math.Round(readMs, 3));
            report.Context("small_batch_kernel", Serving.Engine.Kernels.SmallBatchGemv.Status);
            report.Context("openmp_threads", TorchSharp.torch.get_num_threads());
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

    /// <summary>
    /// Bytes per second at which the OpenMP team reads a buffer twice the weights' size (so no cache holds it), the way a
    /// projection streams its weight: the median of seven passes.
    /// </summary>
    private static unsafe double ReadBandwidth(long weightBytes)
    {
        long bytes = Math.Max(256L << 20, 2 * weightBytes) & ~255L;
        if (!Serving.Engine.Kernels.GemvNative.IsAvailable)
        {
            using var probe = new ReadProbe(bytes);
            double rate = Stats.Median([.. Enumerable.Range(0, 7).Select(_ => probe.PassBandwidth())]);
            Console.Error.WriteLine($"steps: read bandwidth {rate / 1e9:F1} GB/s over {probe.Bytes >> 20} MiB (.NET threads)");
            return rate;
        }

        using var buffer = ones(bytes, ScalarType.Byte);
        nint address = (nint)Serving.Engine.Runtime.CpuTensorMemory.Address(buffer);
        var rates = new List<double>();
        for (int pass = 0; pass < 8; pass++)
        {
            long start = Stopwatch.GetTimestamp();
            Serving.Engine.Kernels.GemvNative.Read(address, bytes);
            if (pass > 0)
                rates.Add(bytes / Stopwatch.GetElapsedTime(start).TotalSeconds);
        }

        rates.Sort();
        Console.Error.WriteLine($"steps: read bandwidth {rates[rates.Count / 2] / 1e9:F1} GB/s over {bytes >> 20} MiB");
        return rates[rates.Count / 2];
    }

    private List<SequenceState> Sequences(LoadedModel loaded, int count, bool adapters, int seed) =>
        Enumerable.Range(0, count).Select(i => new SequenceState(EngineBenchmark.Prompt(seed + i, promptLength, loaded.Config.VocabSize),
            new SamplingParams { Temperature = 0, MaxTokens = 3 * steps + 8, IgnoreEos = true }, loaded.Tokenizer, [],
            adapters ? [(i % Adapters, 1f)] : null)).ToList();

    private sealed record Measured(int Rows, double StepMs, double ForwardMs, double LogitsMs, double SamplingMs, double TensorsPerStep, double ManagedBytesPerStep,
        double GemmMs = double.NaN, double StepOverGemms = double.NaN);

    private Measured Measure(LoadedModel loaded, GenerationStepper stepper, int rows, bool adapters)
    {
        var sequences = Sequences(loaded, rows, adapters, 0);
        for (int warm = 0; warm < 1 + steps / 2; warm++)
            stepper.RunAll(sequences);                      // the prefill, then decode steps until the caches are warm
        var wall = new List<double>();
        double forward = 0, logits = 0, sampling = 0;
        long tensorsBefore = Serving.Engine.Runtime.LibtorchCallCount.OnThisThread, bytesBefore = GC.GetTotalAllocatedBytes(precise: true);
        for (int i = 0; i < steps; i++)
        {
            long start = Stopwatch.GetTimestamp();
            stepper.RunAll(sequences);
            wall.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            forward += stepper.LastTimings.Forward.TotalMilliseconds;
            logits += stepper.LastTimings.LogitsToHost.TotalMilliseconds;
            sampling += stepper.LastTimings.Sampling.TotalMilliseconds;
        }

        double tensors = (double)(Serving.Engine.Runtime.LibtorchCallCount.OnThisThread - tensorsBefore) / steps;
        double managedBytes = (double)(GC.GetTotalAllocatedBytes(precise: true) - bytesBefore) / steps;
        // The same step's projection GEMMs alone, each run right after a step so that both see the same machine state.
        // The VM's speed drifts over seconds, so the ratio is the median of each step's time over the GEMMs right after it.
        var gemmTimes = new List<double>();
        var pairRatios = new List<double>();
        using (var gemms = new ProjectionGemms(loaded.Model, rows))
            for (int i = 0; i < steps; i++)
            {
                long stepStart = Stopwatch.GetTimestamp();
                stepper.RunAll(sequences);
                double stepMs = Stopwatch.GetElapsedTime(stepStart).TotalMilliseconds;
                long start = Stopwatch.GetTimestamp();
                gemms.Run();
                double gemmMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                gemmTimes.Add(gemmMs);
                pairRatios.Add(stepMs / gemmMs);
            }

        wall.Sort();
        gemmTimes.Sort();
        Console.Error.WriteLine($"steps: {(adapters ? "adapters" : "base")} B={rows}: median {wall[wall.Count / 2]:F2} ms (p10 {wall[wall.Count / 10]:F2}, p90 {wall[wall.Count * 9 / 10]:F2}), "
            + $"GEMMs median {gemmTimes[gemmTimes.Count / 2]:F2} ms (p10 {gemmTimes[gemmTimes.Count / 10]:F2}, p90 {gemmTimes[gemmTimes.Count * 9 / 10]:F2}), {tensors:F0} libtorch calls/step");
        return new Measured(rows, wall[wall.Count / 2], forward / steps, logits / steps, sampling / steps, tensors, managedBytes, gemmTimes[gemmTimes.Count / 2],
            Stats.Median(pairRatios));
    }
}
